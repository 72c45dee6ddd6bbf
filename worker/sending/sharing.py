"""How workers divide a key's quota: expiring rate-share leases, as pure functions.

The ``dynamodb`` limiter backend (:mod:`worker.sending.shared`) keeps one item per rate-limit
key in the status table (``RequestId = "rateshare#<key>"``, :class:`KeyFamily.RATE_SHARE`).
It holds every worker's lease, ``{worker: (grant, want, until)}``, the sum of the grants
(``Granted``) and the shared rate after throttles (``Rate`` set at ``RateAt``). A worker
renews its own lease every :func:`renew_s` seconds with one conditional ``UpdateItem`` and
paces its sends locally (GCRA, on the monotonic clock) at its grant. Nothing here does I/O:
the executor turns a :class:`Plan` into the update expression, and :func:`apply` is the same
update on an in-memory item, so the simulation test exercises exactly these rules.

The rules (see docs/throughput.md, "Sharing one quota"):

- **Safety**: ``Granted`` never exceeds the shared rate at the moment of a write, because a
  grant that *grows* is written with the condition ``Granted <= rate - delta`` (atomic in
  DynamoDB, with the same ``ADD Granted`` in the update); a grant that shrinks is applied
  locally *before* its write and written unconditionally. So the sum of what live workers
  send at is at most the quota, whatever the order of their writes.
- **Expiry**: a lease lasts :func:`lease_s` (two renewals plus twice the tolerated clock
  skew); a worker that sees a lease past its ``until`` (on its own wall clock) reclaims it in
  its next write, conditional on that lease being unchanged, so a killed worker's share comes
  back within one lease plus one renewal. A live worker's lease never looks expired to a
  worker whose clock is up to ``2 * MAX_SKEW_S`` ahead. Rates are paced on each worker's
  monotonic clock, so the skew moves no send: it only shifts when a lease looks expired.
- **Fallback**: a worker whose renewal fails paces at :func:`fallback_mps` (the quota over
  the workers it last saw) until one succeeds; as every send also needs a DynamoDB claim,
  a worker cut off from the table sends nothing new, so the fallback matters when the
  table is slow for everyone, and then the fallback shares add up to the quota.
- **Demand**: each lease carries what the worker wants (its recent rate with head room, or
  the whole quota while its sends wait for tokens at its grant); grants are the max-min fair
  division of the shared rate among the live wants (:func:`fair_shares`), so an idle
  worker holds nothing a busy one needs, and unwanted quota is free for whoever asks first.
- **Throttles**: a throttled worker lowers the shared rate (x0.7, once per window) in the item;
  the rate climbs back linearly to the quota over ``RECOVERY_S``, computed by every worker
  from ``(Rate, RateAt)``, so the decrease and the recovery are the same for all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

#: Clock skew between workers that the leases tolerate (wall clocks, in seconds).
MAX_SKEW_S = 0.5
#: Bounds of the renewal period, and what it aims at: the fleet's lease writes for one key
#: stay near this many per message the key's quota allows.
RENEW_MIN_S = 1.0
RENEW_MAX_S = 10.0
CALLS_PER_MESSAGE_TARGET = 0.025
#: A grant below this part of the fair share is short (its worker waits for the rest).
SHORT_FRACTION = 0.99
#: A grant short of the fair share and below this part of the rate is not made (a residue).
RESIDUE_FRACTION = 0.01
#: A worker below its fair share renews this long after the soonest other renewal.
RENEW_AFTER_OTHERS_S = 0.3
#: A renewal (its read and writes) taking longer than this counts as failed: fallback.
RENEW_TIMEOUT_S = 3.0
#: What a lease allows beyond its owner's renewal and its timeout (a late tick, a busy loop).
LEASE_MARGIN_S = 1.0
#: Free quota beyond a worker's fair share (a leaving worker's, or what the others' fair
#: shares have not taken up yet) is borrowed when it adds this part of the rate, unless a
#: lease is short (a worker waits for its fair share): it is given back at the next renewal.
BORROW_MIN_FRACTION = 0.05
#: Shared AIMD, the same constants as the local limiter's (worker.sending.ratelimit).
DECREASE_FACTOR = 0.7
MIN_FRACTION = 0.05
RECOVERY_S = 30.0
DECREASE_WINDOW_S = 2.0
#: The least fraction of a period after which a lease is renewed (see :func:`plan`).
JITTER_MIN = 0.9
#: A worker whose sends did not wait asks for its recent rate times this (head room to grow).
WANT_HEADROOM = 1.25
#: Sends that waited and asked for this much of the grant mean the worker is saturated.
SATURATED = 0.9
#: Rates are kept as integer milli-messages per second, so sums in DynamoDB are exact.
MILLI = 1000


def to_milli(mps: float) -> int:
    return max(0, math.floor(mps * MILLI))


@dataclass(frozen=True, slots=True)
class Lease:
    grant_mmps: int  # what the worker may send at, in milli-messages per second
    want_mmps: int  # what it asked for
    until_ms: int  # wall-clock ms (the owner's clock) after which the lease is void
    renew_at_ms: int = 0  # when the owner means to renew it (wall-clock ms, its clock)
    fair_mmps: int = 0  # the fair share it aimed at (above the grant: it waits for quota)

    @property
    def short(self) -> bool:
        """Its owner got less than its fair share (others held the quota): it waits for
        them to give some back, and none of it may be borrowed meanwhile."""
        return self.grant_mmps < self.fair_mmps * SHORT_FRACTION


@dataclass(frozen=True, slots=True)
class ShareItem:
    """One key's item as read from the table (``None`` fields: not written yet)."""

    leases: Mapping[str, Lease] = field(default_factory=dict)
    granted_mmps: int = 0
    rate_mmps: int | None = None  # the shared rate after the last decrease
    rate_at_ms: int = 0
    # When the item was read (the reader's wall clock, ms; None: not known, take "now"). A
    # lease that runs out after that may have been renewed since: only one that had run out
    # by then is known to be dead (see :func:`expired_leases`).
    seen_at_ms: int | None = None

    def as_of(self, now_ms: int) -> int:
        return now_ms if self.seen_at_ms is None else min(now_ms, self.seen_at_ms)


def shared_rate_mps(item: ShareItem, ceiling_mps: float, now_ms: int) -> float:
    """The key's shared rate now: the quota, or the last decrease recovering linearly."""
    if item.rate_mmps is None:
        return ceiling_mps
    elapsed_s = max(0.0, (now_ms - item.rate_at_ms) / 1000)
    recovered = item.rate_mmps / MILLI + ceiling_mps * elapsed_s / RECOVERY_S
    return min(ceiling_mps, recovered)


def live_leases(item: ShareItem, now_ms: int) -> dict[str, Lease]:
    """The leases live when the item was read (their owners may have renewed them since)."""
    as_of = item.as_of(now_ms)
    return {w: lease for w, lease in item.leases.items() if lease.until_ms > as_of}


def expired_leases(item: ShareItem, now_ms: int, me: str) -> dict[str, Lease]:
    """The leases known to be dead: run out by the time the item was read. (A view is up to
    a renewal period old; a lease that ran out since, in that view, was most likely renewed,
    and reclaiming it would only be refused. The fresh item a write returns shows the dead
    ones, and the correction that follows reclaims them.)"""
    as_of = item.as_of(now_ms)
    return {w: x for w, x in item.leases.items() if x.until_ms <= as_of and w != me}


def fair_shares(wants: Mapping[str, float], capacity: float) -> dict[str, float]:
    """Max-min fair division of ``capacity``: who wants less than an equal part gets what it
    wants, the rest is split equally among the others (water-filling)."""
    shares: dict[str, float] = {}
    remaining = max(0.0, capacity)
    pending = sorted(wants.items(), key=lambda kv: kv[1])
    for i, (worker, want) in enumerate(pending):
        equal = remaining / (len(pending) - i)
        shares[worker] = min(max(0.0, want), equal)
        remaining -= shares[worker]
    return shares


def renew_s(live_workers: int, ceiling_mps: float, max_s: float = RENEW_MAX_S) -> float:
    """The renewal period: the fleet's writes per second for a key, ``live / period``, stay
    at ``CALLS_PER_MESSAGE_TARGET`` of the quota, within ``[RENEW_MIN_S, max_s]`` (the
    ``rate_sharing_renew_max_s`` setting: a lower cap buys faster joins and hand-backs with
    more writes)."""
    period = max(1, live_workers) / (CALLS_PER_MESSAGE_TARGET * ceiling_mps)
    return min(max(RENEW_MIN_S, max_s), max(RENEW_MIN_S, period))


def lease_s(renew_period_s: float) -> float:
    """A lease outlives its owner's next renewal, and the clock skew on both sides: two
    periods, or (for periods longer than the renewal's timeout and a margin) one period, the
    timeout and the margin. A renewal that times out puts the owner on its fallback share
    (:func:`fallback_mps`), so what it paces at its grant is always inside a lease that no
    worker, even one whose clock is ``2 * MAX_SKEW_S`` ahead, sees expired; a shorter lease
    hands a killed worker's share back sooner (13 s at an 8-s period, was 17)."""
    one_renewal = renew_period_s + RENEW_TIMEOUT_S + LEASE_MARGIN_S
    return min(2 * renew_period_s, one_renewal) + 2 * MAX_SKEW_S


def want_mps(used_mps: float, waited: bool, ceiling_mps: float, grant_mps: float) -> float:
    """What a worker asks for (``used_mps``: the tokens its sends asked for, per second).
    Its sends waited and asked for about all of its grant: it could use more, so the whole
    quota (the fair division splits it among those that ask as much). They waited but asked
    for less (an uneven trickle): twice that. They did not wait: their rate with head room,
    so an idle worker asks for nothing."""
    if waited and used_mps >= SATURATED * grant_mps:
        return ceiling_mps
    if waited:
        return min(ceiling_mps, 2 * used_mps)
    return min(ceiling_mps, used_mps * WANT_HEADROOM)


def fallback_mps(ceiling_mps: float, last_live_workers: int) -> float:
    """The conservative local share while the table cannot be reached: the quota divided by
    the workers last seen live (never more than the quota)."""
    return ceiling_mps / max(1, last_live_workers)


@dataclass(frozen=True, slots=True)
class Plan:
    """One renewal: the lease to write and the conditions that keep the invariants."""

    worker: str
    lease: Lease
    delta_mmps: int  # the change of Granted: this grant's change less the reclaimed grants
    previous: Lease | None  # this worker's lease as its view has it (the write checks it)
    reclaim: Mapping[str, Lease]  # expired leases to remove (each checked unchanged)
    limit_mmps: int | None  # grows: Granted must be <= this before the write
    live_workers: int
    renew_s: float
    fair_mmps: int  # the fair share it aims at (the grant waits for free quota to reach it)
    next_renew_s: float  # when to renew after this write (the lease's renew_at)

    @property
    def grant_mps(self) -> float:
        return self.lease.grant_mmps / MILLI


def plan(
    item: ShareItem,
    me: str,
    want: float,
    ceiling_mps: float,
    now_ms: int,
    *,
    max_grant_mps: float | None = None,
    renew_max_s: float = RENEW_MAX_S,
    jitter: float = 1.0,
) -> Plan:
    """The next lease of ``me`` from its view ``item``; ``max_grant_mps`` caps the grant
    (a throttle's local decrease not yet in the item), ``renew_max_s`` the renewal period;
    the next renewal comes ``jitter`` (in ``[JITTER_MIN, 1]``) of a period later, so the
    fleet's renewals spread over the period and quota given back is taken up soon."""
    capacity = shared_rate_mps(item, ceiling_mps, now_ms)
    live = live_leases(item, now_ms)
    others = {w: x for w, x in live.items() if w != me}
    reclaim = expired_leases(item, now_ms, me)
    wants = {w: x.want_mmps / MILLI for w, x in others.items()} | {me: want}
    fair = fair_shares(wants, capacity)[me]
    previous = item.leases.get(me)  # lapsed or not, its grant is still in Granted
    previous_grant = previous.grant_mmps if previous is not None else 0
    reclaimed = sum(x.grant_mmps for x in reclaim.values())
    others_granted = item.granted_mmps - previous_grant - reclaimed
    free = to_milli(capacity) - others_granted
    target = min(to_milli(fair), free)
    borrowed = min(to_milli(want), free)
    short = any(x.short for x in others.values())
    if not short and borrowed - target >= BORROW_MIN_FRACTION * to_milli(capacity):
        # Free quota beyond the fair share (a worker left, or the others' shares wait for
        # their renewals): used now rather than a renewal period later. A worker that then
        # finds its fair share taken writes a short lease and renews just after this one,
        # whose next renewal gives the borrow back.
        target = borrowed
    if max_grant_mps is not None:
        target = min(target, to_milli(max_grant_mps))
    if target < to_milli(fair) * SHORT_FRACTION and target < RESIDUE_FRACTION * to_milli(capacity):
        # Short of the fair share, and only a residue of the rate free (the fair shares'
        # rounding): as good as no grant. Paced at a few milli-MPS, the next token would be
        # hours away and the held messages handed back for that long; with none, the sends
        # wait for the renewal that brings the share.
        target = 0
    target = max(0, target)
    delta = target - previous_grant - reclaimed
    grows = target > previous_grant
    # Granted after the write = Granted + delta <= capacity  <=>  Granted <= capacity - delta
    limit = to_milli(capacity) - delta if grows else None
    n_live = len(others) + 1
    period = renew_s(n_live, ceiling_mps, renew_max_s)
    if target == 0 and want <= 0:
        # Idle, holding nothing: only its liveness to keep up (the fallback's divisor), so
        # at the longest period; a send that waits asks again at once (see the executor).
        period = max(RENEW_MIN_S, renew_max_s)
    next_s = period * jitter
    if target < to_milli(fair) * SHORT_FRACTION:
        # Below the fair share for want of free quota: the others shrink at their renewals,
        # so renew just after the soonest of theirs (at least a second from now).
        soonest = [x.renew_at_ms for x in others.values() if x.renew_at_ms > now_ms]
        after_s = (min(soonest) - now_ms) / 1000 + RENEW_AFTER_OTHERS_S if soonest else 0.0
        next_s = min(period, max(RENEW_MIN_S, after_s))
    until = now_ms + int(lease_s(period) * 1000)
    lease = Lease(target, to_milli(want), until, now_ms + int(next_s * 1000), to_milli(fair))
    return Plan(me, lease, delta, previous, reclaim, limit, n_live, period, to_milli(fair), next_s)


def correction(done: Plan, follow: Plan, capacity_mps: float) -> Plan | None:
    """The write of ``done`` returned the key as it is now, and ``follow`` is the plan from
    it: whether to write it at once. Yes if it shrinks the grant (workers joined or wanted
    more since the view ``done`` came from), rather than a renewal period later; if it grows
    it by ``BORROW_MIN_FRACTION`` of the shared rate ``capacity_mps`` (quota was given back
    since: ``done`` came from a view a period old, and waiting another period for it would
    leave the quota unused). A borrow stays while no lease is short: ``follow`` borrows the
    same. A lease that the item shows short (another borrowed what ``done`` meant to take) is
    written so: that is what makes the borrower give it back at its next renewal."""
    grows = follow.lease.grant_mmps - done.lease.grant_mmps
    worth = BORROW_MIN_FRACTION * to_milli(capacity_mps)
    if grows < 0 or grows >= worth or follow.lease.short > done.lease.short:
        return follow
    return None


class Refused(Exception):
    """The conditional write was refused: the item changed since the view was taken."""


def apply(item: ShareItem, p: Plan) -> ShareItem:
    """The renewal's update on an in-memory item, with the same conditions as the
    executor's ``UpdateItem`` (raises :class:`Refused` where DynamoDB would)."""
    current = item.leases.get(p.worker)
    if current != p.previous:
        raise Refused("own lease changed (reclaimed by another worker?)")
    for worker, lease in p.reclaim.items():
        if item.leases.get(worker) != lease:
            raise Refused(f"lease of {worker} changed")
    if p.limit_mmps is not None and item.granted_mmps > p.limit_mmps:
        raise Refused("not enough free quota")
    leases = {w: x for w, x in item.leases.items() if w not in p.reclaim}
    leases[p.worker] = p.lease
    return replace(item, leases=leases, granted_mmps=item.granted_mmps + p.delta_mmps)


def release(item: ShareItem, me: str) -> ShareItem:
    """Leaving: the lease removed and its grant given back at once."""
    lease = item.leases.get(me)
    if lease is None:
        return item
    leases = {w: x for w, x in item.leases.items() if w != me}
    return replace(item, leases=leases, granted_mmps=item.granted_mmps - lease.grant_mmps)


def decreased_rate(item: ShareItem, ceiling_mps: float, now_ms: int) -> int | None:
    """A throttle's shared decrease (milli-MPS), or ``None`` inside the decrease window of
    the last one (a burst of throttles counts once)."""
    if item.rate_mmps is not None and now_ms - item.rate_at_ms < DECREASE_WINDOW_S * 1000:
        return None
    current = shared_rate_mps(item, ceiling_mps, now_ms)
    return to_milli(max(ceiling_mps * MIN_FRACTION, current * DECREASE_FACTOR))
