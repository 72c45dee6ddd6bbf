"""The rate-share leases (worker.sending.sharing) in a simulated fleet: many workers with
skewed wall clocks, write latencies, joins, kills and uneven demand never send more than the
quota plus one send per worker in any 1-second window, use the quota when busy, and get a
killed worker's share back within a lease and a renewal."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.sandbox.bucket import most_in_window
from worker.sending import sharing as sh

STEP_MS = 10


@dataclass
class SimWorker:
    name: str
    offset_ms: int  # its wall clock minus the true time
    join_ms: int
    leave_ms: int | None = None  # killed then (no release)
    released: bool = False  # it left by SIGTERM: its lease is released at leave_ms
    demand_mps: float | None = None  # None: always has work waiting
    view: sh.ShareItem = field(default_factory=sh.ShareItem)
    rate_mps: float = 0.0
    wanted_mps: float = 0.0
    next_renew_ms: int = 0
    pending: tuple[int, sh.Plan] | None = None
    tat_ms: float = 0.0
    demand_tat_ms: float = 0.0
    sent_since_renew: int = 0
    waited: bool = False
    last_renew_ms: int = 0
    jitter: float = 1.0
    sends: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)  # when its renewals landed

    def pace(self, rate_mps: float, t: int) -> None:
        """A new local rate: as IdentityBucket.set_ceiling, the next slot is at most one
        interval of the new rate away."""
        if rate_mps != self.rate_mps and rate_mps > 0:
            self.tat_ms = min(self.tat_ms, t + 1000 / rate_mps)
        self.rate_mps = rate_mps

    def submit(self, p: sh.Plan, t: int, rng: random.Random) -> None:
        """Write ``p`` (it lands after a random latency); a decrease applies before it."""
        self.pace(min(self.rate_mps, p.grant_mps), t)
        self.pending = (t + rng.randint(5, 150), p)

    def alive(self, t: int) -> bool:
        return t >= self.join_ms and (self.leave_ms is None or t < self.leave_ms)


def simulate(
    workers: list[SimWorker],
    quota: float,
    duration_ms: int,
    seed: int,
    renew_max_s: float = sh.RENEW_MAX_S,
) -> tuple[sh.ShareItem, list[SimWorker]]:
    rng = random.Random(seed)
    item = sh.ShareItem()

    def plan(view: sh.ShareItem, w: SimWorker, want: float, now_ms: int) -> sh.Plan:
        return sh.plan(view, w.name, want, quota, now_ms, renew_max_s=renew_max_s, jitter=w.jitter)

    for w in workers:
        w.next_renew_ms = w.join_ms
        w.tat_ms = w.demand_tat_ms = w.last_renew_ms = w.join_ms
    for t in range(0, duration_ms, STEP_MS):
        for w in workers:
            if w.released and t == w.leave_ms:
                item = sh.release(item, w.name)
            if not w.alive(t):
                continue
            now_ms = t + w.offset_ms
            if w.pending is not None and w.pending[0] <= t:
                _, p = w.pending
                w.pending = None
                try:
                    item = sh.apply(item, p)
                except sh.Refused:
                    # As the executor: read the item again and plan anew with the same want
                    # (what the worker used since its last renewal, not since this refusal).
                    w.view = replace(item, seen_at_ms=now_ms)  # read on its clock
                    w.submit(plan(item, w, w.wanted_mps, now_ms), t, rng)
                    continue
                else:
                    w.view = replace(item, seen_at_ms=now_ms)  # read on its clock
                    w.writes.append(t)
                    w.pace(p.grant_mps, t)
                    capacity_mps = sh.shared_rate_mps(item, quota, now_ms)
                    follow = sh.correction(p, plan(item, w, w.wanted_mps, now_ms), capacity_mps)
                    if follow is not None:  # the executor writes the shrink at once
                        w.submit(follow, t, rng)
                        continue
                    w.next_renew_ms = t + int(p.next_renew_s * 1000)
            if w.pending is None and t >= w.next_renew_ms:
                elapsed_s = max(0.001, (t - w.last_renew_ms) / 1000)
                want = sh.want_mps(w.sent_since_renew / elapsed_s, w.waited, quota, w.rate_mps)
                if t == w.join_ms:
                    want = quota if w.demand_mps is None else w.demand_mps
                w.wanted_mps = want
                w.jitter = rng.uniform(sh.JITTER_MIN, 1.0)  # as the executor, per renewal
                w.submit(plan(w.view, w, want, now_ms), t, rng)
                w.sent_since_renew, w.waited, w.last_renew_ms = 0, False, t
            # sending: paced at the local rate (GCRA on the monotonic = true clock)
            has_work = w.demand_mps is None or t >= w.demand_tat_ms
            if not has_work:
                continue
            if w.rate_mps <= 0 or t < w.tat_ms:
                w.waited = True
                continue
            w.sends.append(t)
            w.sent_since_renew += 1
            # (the step quantises time: a slot due inside the last step is not lost)
            w.tat_ms = max(w.tat_ms, t - STEP_MS) + 1000 / w.rate_mps
            if w.demand_mps is not None:
                w.demand_tat_ms = max(w.demand_tat_ms, t) + 1000 / w.demand_mps
    return item, workers


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=8),
    quota=st.sampled_from([10.0, 20.0, 50.0]),
    offsets=st.lists(st.integers(min_value=-500, max_value=500), min_size=8, max_size=8),
    joins=st.lists(st.integers(min_value=0, max_value=6000), min_size=8, max_size=8),
    kills=st.lists(st.one_of(st.none(), st.integers(8000, 14000)), min_size=8, max_size=8),
    seed=st.integers(0, 1000),
)
def test_never_more_than_quota_plus_burst_in_any_window(
    n: int,
    quota: float,
    offsets: list[int],
    joins: list[int],
    kills: list[int | None],
    seed: int,
) -> None:
    workers = [
        SimWorker(f"w{i}", offsets[i], joins[i] if i else 0, kills[i] if i else None)
        for i in range(n)
    ]
    _, done = simulate(workers, quota, 20_000, seed)
    sends = [t for w in done for t in w.sends]
    # Each pacer may fall one send into a window beyond its rate (its phase): the burst.
    assert most_in_window(sends, 1000) <= quota + n  # times in ms
    # The live workers' grants never sum above the quota (the invariant behind it).


def test_busy_fleet_uses_the_quota_and_divides_it_evenly() -> None:
    workers = [SimWorker(f"w{i}", (-1) ** i * 400, join_ms=0) for i in range(3)]
    _, done = simulate(workers, 20.0, 30_000, seed=1)
    steady = [t for w in done for t in w.sends if 10_000 <= t < 30_000]
    assert len(steady) >= 0.98 * 20 * 20
    per_worker = [sum(10_000 <= t < 30_000 for t in w.sends) for w in done]
    assert max(per_worker) - min(per_worker) <= 0.1 * max(per_worker)


def test_an_idle_worker_holds_no_quota_a_busy_one_needs() -> None:
    busy = SimWorker("busy", 0, join_ms=0)
    idle = SimWorker("idle", 300, join_ms=0, demand_mps=1.0)
    item, done = simulate([busy, idle], 20.0, 45_000, seed=2)
    assert item.leases["idle"].grant_mmps <= 2 * sh.WANT_HEADROOM * 1000
    # (while its grant is 0 the idle worker's sends wait, so it asks for more at first)
    sent = sum(25_000 <= t < 45_000 for t in done[0].sends)
    assert sent >= 0.9 * (20 - 2 * sh.WANT_HEADROOM) * 20


def test_a_killed_workers_share_comes_back_within_a_lease_and_a_renewal() -> None:
    killed_at = 10_000
    workers = [SimWorker("a", 0, 0), SimWorker("b", 0, 0), SimWorker("c", 250, 0, killed_at)]
    _, done = simulate(workers, 20.0, 60_000, seed=3)
    period = sh.renew_s(3, 20.0)
    back_by = killed_at + int((sh.lease_s(period) + 2 * period + 1) * 1000)
    after = [t for w in done[:2] for t in w.sends if back_by <= t < back_by + 5000]
    assert len(after) >= 0.95 * 20 * 5


def test_a_released_share_is_used_again_at_the_next_renewal_of_any_worker() -> None:
    """A SIGTERM'd worker gives its grant back at once; the first of the others to renew
    after that borrows it whole (no lease is short), rather than each taking its part of it
    at its own renewal up to a period later; within a period the borrow is given back and
    the shares are even again."""
    left_at, quota = 20_000, 20.0
    workers = [SimWorker(n, off, 0) for n, off in (("a", 400), ("b", -400), ("c", 0))]
    workers.append(SimWorker("d", 250, 0, left_at, released=True))
    _, done = simulate(workers, quota, 60_000, seed=7)
    everyone = [t for w in done for t in w.sends]
    assert most_in_window(everyone, 1000) <= quota + len(done)
    first = min(t for w in done[:3] for t in w.writes if t >= left_at)
    after = [t for t in everyone if first + 1000 <= t < first + 4000]
    assert len(after) >= 0.95 * quota * 3, (first - left_at, len(after))
    period_ms = int(sh.renew_s(3, quota) * 1000)
    even_from = left_at + 2 * period_ms + 3000  # the short ones renew after the borrower
    per_worker = [sum(even_from <= t < even_from + 10_000 for t in w.sends) for w in done[:3]]
    assert max(per_worker) - min(per_worker) <= 0.1 * max(per_worker), per_worker


def test_a_lower_renewal_cap_hands_a_killed_share_back_and_admits_a_joiner_sooner() -> None:
    """At the join/leave test's scale (10 MPS, four workers: a 10-s period by default), a
    1-s cap (SMS_WORKER_RATE_SHARING_RENEW_MAX_S) makes a killed worker's share usable again
    within 5 s, and a joiner's fair share too, never above quota plus burst."""
    assert sh.renew_s(4, 10.0) == sh.RENEW_MAX_S and sh.renew_s(4, 10.0, 1.0) == 1.0
    assert sh.renew_s(4, 10.0, 0.2) == sh.RENEW_MIN_S  # never below a second
    killed_at, joined_at, quota = 20_000, 40_000, 10.0
    workers = [
        SimWorker("a", 400, 0),
        SimWorker("b", -400, 0),
        SimWorker("c", 0, 0),
        SimWorker("d", 250, 0, killed_at),
    ]
    workers.append(SimWorker("e", -250, joined_at))
    _, done = simulate(workers, quota, 60_000, seed=5, renew_max_s=1.0)
    everyone = [t for w in done for t in w.sends]
    assert most_in_window(everyone, 1000) <= quota + len(done)
    after_kill = [t for w in done for t in w.sends if killed_at + 5000 <= t < killed_at + 10_000]
    assert len(after_kill) >= 0.95 * quota * 5
    joiner = [t for t in done[-1].sends if joined_at + 5000 <= t < joined_at + 10_000]
    assert len(joiner) >= 0.9 * quota / 4 * 5  # its fair quarter


def test_fair_shares_are_max_min_fair() -> None:
    shares = sh.fair_shares({"a": 2.0, "b": 100.0, "c": 100.0}, 20.0)
    assert shares == {"a": 2.0, "b": 9.0, "c": 9.0}
    assert sum(sh.fair_shares({"a": 1.0, "b": 1.0}, 20.0).values()) == 2.0


def test_an_idle_worker_renews_at_the_longest_period() -> None:
    """Holding nothing and asking nothing, a worker renews only to stay counted live: at the
    renewal cap, not the fleet's period (1 s at 100 MPS); its lease lasts for that period."""
    busy = sh.plan(sh.ShareItem(), "a", 100.0, 100.0, now_ms=0)
    assert busy.renew_s == sh.RENEW_MIN_S and busy.grant_mps == 100.0
    idle = sh.plan(sh.ShareItem(), "a", 0.0, 100.0, now_ms=0)
    assert idle.grant_mps == 0 and idle.renew_s == idle.next_renew_s == sh.RENEW_MAX_S
    assert idle.lease.until_ms == int(sh.lease_s(sh.RENEW_MAX_S) * 1000)


def test_a_growing_grant_is_refused_when_others_hold_the_quota() -> None:
    full = sh.ShareItem({"a": sh.Lease(20_000, 20_000, 10**9)}, granted_mmps=20_000)
    p = sh.plan(sh.ShareItem(), "b", 20.0, 20.0, now_ms=1000)  # a stale, empty view
    try:
        sh.apply(full, p)
    except sh.Refused:
        pass
    else:
        raise AssertionError("a grant past the quota was written")
    fresh = sh.plan(full, "b", 20.0, 20.0, now_ms=1000)
    assert fresh.lease.grant_mmps == 0  # until a shrinks at its renewal


def test_a_throttle_lowers_the_shared_rate_once_per_window_and_it_recovers() -> None:
    item = sh.ShareItem()
    lowered = sh.decreased_rate(item, 20.0, now_ms=0)
    assert lowered == 14_000
    item = sh.ShareItem(rate_mmps=lowered, rate_at_ms=0)
    assert sh.decreased_rate(item, 20.0, now_ms=500) is None  # the same burst
    assert sh.shared_rate_mps(item, 20.0, now_ms=0) == 14.0
    assert sh.shared_rate_mps(item, 20.0, now_ms=int(sh.RECOVERY_S * 1000)) == 20.0
    assert sh.fallback_mps(20.0, 4) == 5.0
