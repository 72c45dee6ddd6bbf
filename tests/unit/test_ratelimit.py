"""The per-identity token buckets and their adaptation, on a simulated clock."""

from __future__ import annotations

import asyncio

import pytest

from worker.sending.limiter import Room
from worker.sending.ratelimit import IdentityBucket, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pacing_is_exact_and_never_above_the_ceiling() -> None:
    clock = Clock()
    bucket = IdentityBucket(20.0, burst_s=0.1, clock=clock)
    sends = []
    for _ in range(200):
        clock.now += bucket.reserve()
        sends.append(clock.now)
    span = sends[-1] - sends[0]
    assert span == pytest.approx(198 / 20.0)  # 2 tokens of burst, then one per 1/20 s
    # Never more than the bucket's depth (2 tokens at 20/s x 0.1 s) in any 1/20 s.
    for i in range(len(sends) - 2):
        assert sends[i + 2] - sends[i] >= 1 / 20.0 - 1e-9


def test_identities_do_not_block_each_other() -> None:
    clock = Clock()
    limiter = RateLimiter({"default": 100.0, "slow": 1.0}, burst_s=0.1, clock=clock)
    slow = limiter.bucket("slow")
    waits = [slow.reserve() for _ in range(10)]
    assert waits[-1] == pytest.approx(9.0)  # the slow identity is booked 9 s ahead...
    assert limiter.bucket("fast").reserve() == 0.0  # ...and a fast one still goes at once
    assert limiter.bucket("fast").ceiling_mps == 100.0
    assert slow.next_wait_s() == pytest.approx(10.0)


async def test_waiters_of_a_slow_identity_do_not_delay_a_fast_one() -> None:
    limiter = RateLimiter({"default": 1000.0, "slow": 2.0}, burst_s=0.1)
    slow = [asyncio.create_task(limiter.bucket("slow").acquire()) for _ in range(5)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(50):
        await limiter.bucket("fast").acquire()
    assert loop.time() - started < 1.0  # 50 tokens at 1000/s, not behind 2 s of slow waits
    assert not all(t.done() for t in slow)
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)


def test_throttle_decreases_once_per_window_and_recovers_to_the_ceiling() -> None:
    clock = Clock()
    bucket = IdentityBucket(10.0, burst_s=0.1, clock=clock)
    bucket.on_throttle()
    assert bucket.rate_mps == pytest.approx(7.0)
    bucket.on_throttle()  # same window: one burst of throttles counts once
    assert bucket.rate_mps == pytest.approx(7.0)
    clock.now += 1.0
    bucket.reserve()
    assert 7.0 < bucket.rate_mps < 10.0  # recovering linearly
    for _ in range(20):
        bucket.on_throttle()
        clock.now += 1.0
    assert bucket.rate_mps >= 10.0 * IdentityBucket.min_fraction  # floored
    clock.now += IdentityBucket.recovery_s + 1
    bucket.reserve()
    assert bucket.rate_mps == 10.0  # back to, and never above, the ceiling


def test_workers_sharing_a_quota_converge_under_it() -> None:
    """Three workers, each configured with the whole quota, against a provider bucket."""
    clock = Clock()
    quota, dt = 30.0, 0.001
    provider_tokens, provider_depth = quota, quota  # one second of burst, as the sandbox
    workers = [IdentityBucket(quota, burst_s=0.1, clock=clock) for _ in range(3)]
    next_send = [clock.now + w.reserve() for w in workers]
    accepted = throttled = 0
    start = clock.now
    accepted_late = 0
    while clock.now - start < 120:
        clock.now += dt
        provider_tokens = min(provider_depth, provider_tokens + quota * dt)
        for i, worker in enumerate(workers):
            while next_send[i] <= clock.now:
                if provider_tokens >= 1:
                    provider_tokens -= 1
                    accepted += 1
                    if clock.now - start >= 20:
                        accepted_late += 1
                else:
                    throttled += 1
                    worker.on_throttle()
                next_send[i] = clock.now + worker.reserve()
    late_rate = accepted_late / 100
    assert late_rate <= quota * 1.02  # the provider enforces it; the workers stay near it
    assert late_rate >= quota * 0.85  # and still use most of it
    assert throttled / (accepted + throttled) < 0.08  # they back off instead of hammering
    assert all(w.rate_mps < quota for w in workers)


async def test_a_decrease_voids_slots_already_handed_out() -> None:
    """A waiter whose slot was reserved at the old rate takes a new one at the new spacing."""
    clock = Clock()
    sleeps: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(delay_s: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sleeps.append((delay_s, woken))
        await woken

    def wake() -> None:
        delay_s, woken = sleeps[-1]
        clock.now += delay_s
        woken.set_result(None)

    bucket = IdentityBucket(10.0, burst_s=0.1, clock=clock, sleep=sleep)
    assert await bucket.acquire() == 0.0  # the first token is free
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    assert sleeps[0][0] == pytest.approx(0.1)  # its slot at 10 MPS
    bucket.on_throttle()  # 10 -> 7 MPS while it sleeps
    wake()
    await asyncio.sleep(0)
    assert len(sleeps) == 2 and sleeps[1][0] == pytest.approx(1 / 7 - 0.1)  # re-reserved
    wake()
    assert await waiter == pytest.approx(1 / 7)  # one new interval after the first send

    undisturbed = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    wake()
    # No second lap without a decrease (the rate has begun to climb back: a little under 1/7).
    assert 1 / 8 < await undisturbed <= 1 / 7 and len(sleeps) == 3


def _shared_quota_with_latency(seconds: float) -> tuple[float, float]:
    """Three workers, each configured with the whole quota and 64 sends in flight, against a
    provider bucket 50 ms away; a throttled send is retried after a short backoff. An event
    simulation driving the buckets as ``acquire`` does (a slot whose epoch changed is taken
    again). Returns (accepted per second / quota, throttled fraction)."""
    import heapq
    import random

    rnd = random.Random(7)
    clock = Clock()
    quota, latency_s = 20.0, 0.05
    tokens = depth = quota  # one second of burst, as the sandbox
    workers = [IdentityBucket(quota, burst_s=0.1, clock=clock) for _ in range(3)]
    # (time, sequence, kind, worker, epoch or throttled flag)
    events: list[tuple[float, int, str, int, int]] = []
    seq = 0

    def schedule(at: float, kind: str, worker: int, tag: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, worker, tag))

    for i, bucket in enumerate(workers):
        for _ in range(64):
            schedule(clock.now + bucket.reserve(), "send", i, bucket.epoch)
    start, accepted, throttled = clock.now, 0, 0
    while events and events[0][0] - start < seconds:
        at, _, kind, i, tag = heapq.heappop(events)
        tokens = min(depth, tokens + quota * (at - clock.now))
        clock.now = at
        bucket = workers[i]
        if kind == "send":
            if tag != bucket.epoch:  # reserved before a decrease: void, take a new slot
                schedule(at + bucket.reserve(), "send", i, bucket.epoch)
                continue
            ok = tokens >= 1
            tokens -= 1 if ok else 0
            schedule(at + latency_s * rnd.uniform(0.6, 1.4), "answer", i, int(ok))
        elif tag:
            accepted += 1
            schedule(at + bucket.reserve(), "send", i, bucket.epoch)
        else:
            throttled += 1
            bucket.on_throttle()
            backoff_s = rnd.uniform(0, 0.2)
            schedule(at + backoff_s + bucket.reserve(), "send", i, bucket.epoch)
    return accepted / seconds / quota, throttled / (accepted + throttled)


def test_workers_with_sends_in_flight_converge_without_hammering() -> None:
    utilisation, throttled = _shared_quota_with_latency(120)
    assert utilisation <= 1.02 + 1 / 120  # the provider's quota (plus its one-second burst)
    assert utilisation >= 0.9  # and most of it used
    # Voiding the old schedule on a decrease is what keeps this low: without it the slots
    # 64 sends reserved at the old rate kept going out and about 25% of calls were throttled.
    assert throttled < 0.12


def test_unconfigured_buckets_are_bounded_and_idle_ones_expire() -> None:
    """Producer-supplied identities cannot grow the limiter (or its metrics) without bound;
    a bucket is dropped only at rest, so no reservation and no throttle is forgotten."""
    clock = Clock()
    limiter = RateLimiter(
        {"default": 10.0, "pool-kept": 5.0},
        0.1,
        clock,
        max_buckets=3,
        idle_expiry_s=60,
        in_use_s=0,
    )
    limiter.bucket("pool-kept")
    for n in range(10):
        limiter.bucket(f"sender-{n}")
        clock.now += 1.0  # each at rest again a second later (10 MPS)
    assert len(limiter.buckets()) <= 3 + 1  # the cap, plus the configured one
    assert "pool-kept" in limiter.buckets()  # configured identities always stay
    busy = limiter.bucket("busy")
    for _ in range(20):
        busy.reserve()  # two seconds booked ahead: not at rest
    busy.on_throttle()
    for n in range(10, 20):
        limiter.bucket(f"sender-{n}")
    assert limiter.buckets()["busy"] is busy  # booked ahead and slowed: never dropped
    clock.now += 600
    limiter.bucket("late")
    assert set(limiter.buckets()) == {"pool-kept", "late"}  # idle ones expired
    assert [i for i, _ in limiter.most_recent(1)] == ["late"]


def test_configured_identities_keep_their_bucket_however_idle() -> None:
    clock = Clock()
    limiter = RateLimiter(
        {"default": 10.0, "pool-a": 5.0, "+12065550100": 1.0},
        0.1,
        clock,
        max_buckets=2,
        idle_expiry_s=60,
        in_use_s=0,
    )
    kept = {name: limiter.bucket(name) for name in ("pool-a", "+12065550100")}
    clock.now += 10_000
    for n in range(50):
        limiter.bucket(f"sender-{n}")
        clock.now += 1.0
    assert limiter.snapshot().total <= 2 + 2
    for name, bucket in kept.items():
        assert limiter.buckets()[name] is bucket
        assert limiter.bucket(name) is bucket
    assert limiter.bucket("pool-a").ceiling_mps == 5.0


def test_over_the_cap_the_least_recently_used_bucket_at_rest_goes() -> None:
    clock = Clock()
    limiter = RateLimiter({"default": 10.0}, 0.1, clock, max_buckets=3, in_use_s=5)
    for name in ("a", "b", "c"):
        limiter.bucket(name)
        clock.now += 10
    limiter.bucket("a")  # used again: now the most recent
    clock.now += 10
    limiter.bucket("d")
    assert set(limiter.buckets()) == {"a", "c", "d"}  # b was the least recently used
    limiter.bucket("e")
    assert set(limiter.buckets()) == {"a", "d", "e"}


def test_a_bucket_handed_out_recently_is_kept_over_the_cap_for_a_while() -> None:
    """A caller may still hold a bucket (a request lives up to a token wait and a lease): a
    flood of new identities exceeds the cap for ``in_use_s`` and then falls back under it."""
    clock = Clock()
    limiter = RateLimiter({"default": 10.0}, 0.1, clock, max_buckets=10, in_use_s=120)
    held = limiter.bucket("held")
    for n in range(40):
        limiter.bucket(f"flood-{n}")
        clock.now += 0.5  # 20 s of new identities, all at rest
    assert len(limiter.buckets()) == 41  # none dropped: each might be in a caller's hands
    assert limiter.buckets()["held"] is held
    clock.now += 120
    for n in range(10):
        limiter.bucket(f"later-{n}")
    assert len(limiter.buckets()) == 10  # each new bucket's pass dropped up to 8 old ones
    assert "held" not in limiter.buckets()
    assert {f"later-{n}" for n in range(10)} == set(limiter.buckets())


def test_booked_ahead_or_slowed_buckets_are_never_dropped_and_do_not_block_the_others() -> None:
    clock = Clock()
    limiter = RateLimiter(
        {"default": 10.0}, 0.1, clock, max_buckets=4, idle_expiry_s=60, in_use_s=0
    )
    booked = limiter.bucket("booked")
    for _ in range(100):
        booked.reserve()  # ten seconds booked ahead
    slowed = limiter.bucket("slowed")
    slowed.on_throttle()  # its rate is lowered; nothing booked
    clock.now += 2.0
    for n in range(30):
        limiter.bucket(f"sender-{n}")
        clock.now += 0.1
    assert limiter.buckets()["booked"] is booked
    assert limiter.buckets()["slowed"] is slowed and slowed.rate_mps < slowed.ceiling_mps
    # They were moved past, not stuck at the front: the others stayed under the cap.
    assert len(limiter.buckets()) <= 4 + 2
    # At rest again (slots passed, rate recovered) they go like any other.
    clock.now += IdentityBucket.recovery_s + 60
    limiter.bucket("new")
    limiter.snapshot()
    assert "booked" not in limiter.buckets() and "slowed" not in limiter.buckets()


def test_idle_buckets_expire_under_the_cap_too() -> None:
    clock = Clock()
    limiter = RateLimiter({"default": 10.0}, 0.1, clock, idle_expiry_s=300)
    for n in range(5):
        limiter.bucket(f"sender-{n}")
    clock.now += 299
    limiter.bucket("sender-0")  # used again: not idle
    assert limiter.snapshot().total == 5  # nothing idle for 300 s yet
    clock.now += 2
    assert [i for i, _ in limiter.snapshot().recent] == ["sender-0"]
    assert len(limiter.buckets()) == 1


def test_snapshot_names_the_most_recent_and_aggregates_the_rest() -> None:
    clock = Clock()
    limiter = RateLimiter({"default": 10.0, "pool-a": 5.0}, 0.1, clock)
    limiter.bucket("pool-a")
    for n in range(120):
        clock.now += 0.01
        bucket = limiter.bucket(f"sender-{n}")
        if n < 3:
            bucket.on_throttle()
            for _ in range(20):
                bucket.reserve()
    view = limiter.snapshot()
    assert len(view.recent) == 50
    assert [i for i, _ in view.recent] == [f"sender-{n}" for n in range(119, 69, -1)]
    assert view.others == 71 and view.total == 121  # 70 senders and pool-a
    assert view.others_slowed == 3
    assert view.others_max_wait_s > 1.0  # the throttled ones are booked ahead
    assert limiter.snapshot(0).recent == () and limiter.snapshot(0).others == 121
    assert limiter.most_recent(2) == list(limiter.snapshot(2).recent)
    clock.now += 0.01
    limiter.bucket("pool-a")
    assert limiter.snapshot(1).recent[0][0] == "pool-a"  # configured ones rank by use too


def test_tokens_advance_the_schedule_by_tokens_over_rate() -> None:
    clock = Clock()
    bucket = IdentityBucket(10.0, burst_s=0.1, clock=clock)
    assert bucket.reserve(3) == 0.0  # a 3-part SMS goes at once...
    assert bucket.next_wait_s() == pytest.approx(0.3)  # ...and books 3/10 s of the schedule
    clock.now += bucket.reserve(1)
    clock.now += bucket.reserve(5)
    assert clock.now - 1000.0 == pytest.approx(0.4)
    assert bucket.next_wait_s() == pytest.approx(0.5)
    # 100 parts in any mix take 100/rate seconds: the quota counts parts, not messages.
    clock.now = 2000.0
    bucket = IdentityBucket(10.0, burst_s=0.1, clock=clock)
    sizes = [1, 4, 2, 3] * 10
    for size in sizes:
        clock.now += bucket.reserve(size)
    assert clock.now - 2000.0 == pytest.approx((sum(sizes) - sizes[-1]) / 10.0)


async def test_the_limiter_reserves_parts_of_the_keys_quota() -> None:
    quotas = {"+1800/SMS": 50.0}
    limiter = RateLimiter(
        {"default": 1.0}, burst_s=0.1, clock=Clock(), quota_mps=lambda k: quotas.get(k, 1.0)
    )
    assert await limiter.reserve("+1800/SMS", 10) == 0.0
    # 10 parts at 50/s book 0.2 s, less the burst tolerance of 4 tokens (0.08 s).
    assert limiter.next_wait_s("+1800/SMS", 1) == pytest.approx(0.12)
    assert limiter.bucket("+1800/SMS").ceiling_mps == 50.0
    assert limiter.bucket("+1800").ceiling_mps == 1.0


def test_a_new_ceiling_voids_the_slots_handed_out_at_the_old_rate() -> None:
    clock = Clock()
    bucket = IdentityBucket(1.0, burst_s=0.1, clock=clock)
    bucket.reserve()
    assert bucket.reserve() == pytest.approx(1.0)
    epoch = bucket.epoch
    bucket.set_ceiling(10.0)  # a shared limiter's grant grew
    assert bucket.epoch != epoch and bucket.ceiling_mps == bucket.rate_mps == 10.0
    assert bucket.reserve() == pytest.approx(0.1)


def test_a_decrease_keeps_what_is_left_of_a_multi_part_send_already_gone() -> None:
    """A throttle voids the slots ahead, not the parts of an SMS already sent: 10 parts at
    10 MPS take the next second, and at 7 MPS what is left of them takes longer still."""
    clock = Clock()
    bucket = IdentityBucket(10.0, burst_s=0.1, clock=clock)
    assert bucket.reserve(10) == 0.0  # a 10-part SMS goes now: the schedule's next second
    assert bucket.reserve(1) == pytest.approx(1.0)  # a waiter's slot after it (voided below)
    clock.now += 0.2
    bucket.on_throttle()  # 10 -> 7 MPS
    # 0.8 s of the 10 parts' second is left, 8 parts: at 7 MPS 8/7 s, not the 1/7 s of a
    # schedule started afresh.
    assert bucket.reserve(1) == pytest.approx(8 / 7)
    # A grant that changes (a shared limiter's set_ceiling) keeps them the same way.
    clock.now = 2000.0
    bucket = IdentityBucket(10.0, burst_s=0.1, clock=clock)
    bucket.reserve(10)
    bucket.set_ceiling(5.0)  # the parts left (1 s at 10 MPS) take 2 s at 5
    assert bucket.reserve(1) == pytest.approx(2.0)
    bucket.set_ceiling(20.0)  # and half a second at 20 (the slot booked at 5 MPS is void),
    assert bucket.reserve(1) == pytest.approx(0.5 - 0.05)  # less 20 MPS's 1 token of burst


def test_two_changes_in_a_row_keep_a_send_gone_within_the_burst_tolerance() -> None:
    """A slot that went early (within the burst tolerance) is gone however the tolerance
    moves after it: a renewal's grant and its correction 10 ms later both keep its parts."""
    clock = Clock()
    bucket = IdentityBucket(20.0, burst_s=0.1, clock=clock)
    bucket.reserve(1)
    clock.now += 0.01
    assert bucket.reserve(10) == 0.0  # starts 0.04 s ahead, inside 20 MPS's 0.05 s: goes now
    bucket.set_ceiling(10.0)  # its 0.54 s left at 20 MPS take 1.08 s at 10
    clock.now += 0.01
    bucket.set_ceiling(20 / 3)  # 1.07 s left at 10 MPS take 1.605 s at 6.67 (was 0.15)
    assert bucket.reserve(1) == pytest.approx(1.605)


def test_the_parts_left_are_reckoned_at_the_rate_they_were_booked_at() -> None:
    """Recovery between the booking and a throttle does not inflate what is left."""
    clock = Clock()
    bucket = IdentityBucket(20.0, burst_s=0.1, clock=clock)
    bucket.on_throttle()  # 20 -> 14 MPS, recovering from here
    clock.now += bucket.next_wait_s()
    slot = bucket.book(20)  # a 20-part SMS: 20/rate s of the schedule, and it goes now
    assert slot.wait_s == 0.0 and slot.rate_mps == bucket.rate_mps
    clock.now += 1.0  # the decrease window; the rate has recovered meanwhile
    bucket.on_throttle()
    assert bucket.rate_mps < slot.rate_mps
    left_s = slot.end - clock.now
    assert 0 < left_s < 0.5
    # The parts left (left_s at the rate they were booked at), paid at the new rate, less
    # its burst tolerance.
    rate = bucket.rate_mps
    tolerance_s = max(0.0, 0.1 * rate - 1) / rate
    assert bucket.reserve(1) == pytest.approx(left_s * slot.rate_mps / rate - tolerance_s)


async def test_a_waiter_whose_slot_a_change_voided_is_counted_once() -> None:
    """A waiter whose sleep ended but whose task has not run when a throttle lands books
    again: its voided slot is not also kept as gone."""
    clock = Clock()
    sleeps: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(delay_s: float) -> None:
        clock.now += delay_s  # the timer is due...
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sleeps.append((delay_s, woken))
        await woken  # ...but the task runs only when woken

    bucket = IdentityBucket(10.0, burst_s=0.1, clock=clock, sleep=sleep)
    assert await bucket.acquire() == 0.0
    waiter = asyncio.create_task(bucket.acquire(10))
    await asyncio.sleep(0)
    assert sleeps[0][0] == pytest.approx(0.1)  # its 10 parts' slot, after the first send's
    bucket.on_throttle()  # another task's throttle runs first: 10 -> 7 MPS
    sleeps[0][1].set_result(None)
    await asyncio.sleep(0)
    # It books again one interval of the new rate on, not after its voided 10 parts too.
    assert len(sleeps) == 2 and sleeps[1][0] == pytest.approx(1 / 7)
    sleeps[1][1].set_result(None)
    assert await waiter == pytest.approx(0.1 + 1 / 7)


def test_room_is_the_most_over_the_keys_used_recently() -> None:
    """What the pollers receive (hold_ahead_s): the most sends that could get their tokens
    within the time, over the keys used in the last ``recent_s``, so one identity's backlog
    never stops receives for another still in use, and a key not used for a while no longer
    counts unless it is still booked ahead (with none, the room is not known)."""
    clock = Clock()
    limiter = RateLimiter({"slow": 1.0}, burst_s=1.0, clock=clock)
    assert limiter.room(5.0) is None  # nothing in use: what a send would wait is not known
    for _ in range(6):
        limiter.bucket("slow").reserve()
    assert limiter.bucket("slow").next_wait_s() == pytest.approx(6.0)  # the 7th, at 1 MPS
    assert limiter.room(5.0) == Room(0, 6)  # 6 in 5 s from empty
    assert limiter.room(8.0) == Room(3, 9)  # its tokens at 6, 7 and 8 s
    limiter.bucket("producer-id")  # an unconfigured key in use, nothing booked: receive
    assert limiter.room(5.0) == Room(5 * 20 + 1, 5 * 20 + 1)  # at the default 20 MPS
    clock.now += 3.0  # neither used in the last 2 s, but "slow" is still booked ahead
    assert limiter.room(5.0, recent_s=2.0) == Room(3, 6)  # 3 s on: its tokens at 3, 4, 5 s
    clock.now += 4.0  # and now it is not
    assert limiter.room(5.0, recent_s=2.0) is None
    limiter.bucket("slow")
    assert limiter.room(5.0, recent_s=2.0) == Room(6, 6)
