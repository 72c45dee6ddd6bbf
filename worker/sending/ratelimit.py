"""Per-origination-identity rate limits with additive-increase/multiplicative-decrease.

Each identity gets its own bucket (GCRA, the virtual-scheduling form of a token bucket): an
``acquire`` reserves the next slot in O(1) and sleeps until it, so a slow identity's waiters
never hold up a fast one's. The configured rate is the ceiling; a ``ThrottlingException``
lowers the identity's rate multiplicatively (at most once per decrease window, so one burst of
throttles counts once) and it climbs back linearly to the ceiling.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from worker.sending.limiter import ROOM_RECENT_S, Room

DEFAULT_KEY = "default"
# Identities come from producers: the buckets of those not configured are kept in LRU order
# and dropped once idle and at rest (see RateLimiter._evict), so a campaign of a million
# sender ids cannot grow the worker's memory or its metrics without bound.
MAX_BUCKETS = 1_000
IDLE_EXPIRY_S = 600.0
# A caller may hold a bucket it was handed for as long as one request lives (a token wait of
# up to max_token_wait_s, then a lease of lease_s of send retries): a bucket handed out more
# recently than this is not dropped even over the cap, or its holder would go on booking
# slots (and seeing throttles) in a bucket the limiter had forgotten, beside a new one.
IN_USE_S = 120.0
#: How many buckets one eviction pass looks at, at most: bucket() stays O(1).
EVICT_SCAN_MAX = 8
#: How many identities RateLimiter.snapshot() names by default; the rest are aggregated.
SNAPSHOT_MAX = 50


class Slot(NamedTuple):
    """A booking in an identity's schedule (:meth:`IdentityBucket.book`)."""

    wait_s: float  # how long its caller waits for it (0: it goes now)
    end: float  # when its tokens are paid for (monotonic)
    rate_mps: float  # the rate ``end`` was reckoned at
    epoch: int  # the schedule it belongs to (a change voids the slots of older ones)


class IdentityBucket:
    """A token bucket for one identity; all of the worker's tasks share it."""

    decrease_factor = 0.7
    min_fraction = 0.05  # never below 5% of the ceiling
    recovery_s = 30.0  # from the floor back to the ceiling, linearly

    def __init__(
        self,
        ceiling_mps: float,
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ceiling_mps = ceiling_mps
        self.rate_mps = ceiling_mps
        self._burst_s = burst_s
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next token
        # The end of the newest slot whose send has gone, and the rate it was reckoned at: a
        # change voids the slots still ahead, not what is left of that one (the parts of a
        # 10-part SMS sent just before a throttle).
        self._gone_end = self._tat
        self._gone_rate = ceiling_mps
        self._last_adjust = self._tat
        self._last_decrease = -1e18
        self.epoch = 0  # changes when a decrease voids the slots handed out before it

    def _recover(self, now: float) -> None:
        if self.rate_mps < self.ceiling_mps:
            step = self.ceiling_mps * (now - self._last_adjust) / self.recovery_s
            self.rate_mps = min(self.ceiling_mps, self.rate_mps + step)
        self._last_adjust = now

    def _tolerance_s(self) -> float:
        return max(0.0, self._burst_s * self.rate_mps - 1.0) / self.rate_mps

    def _wait_s(self, tat: float, now: float) -> float:
        """How long the slot at ``tat`` waits from ``now``, less the burst tolerance."""
        return max(0.0, tat - self._tolerance_s() - now)

    def _carry_gone(self, now: float, rate_mps: float) -> float:
        """Carry what is left of the newest slot gone over to ``rate_mps`` (a second change
        scales it again); return it, in seconds at that rate."""
        owed_s = max(0.0, self._gone_end - now) * self._gone_rate / rate_mps
        self._gone_end, self._gone_rate = now + owed_s, rate_mps
        return owed_s

    def _gone(self, slot: Slot) -> None:
        if slot.end > self._gone_end:
            self._gone_end, self._gone_rate = slot.end, slot.rate_mps

    def next_wait_s(self, tokens: int = 1) -> float:
        """How long a request arriving now would wait for its token (reserves nothing)."""
        now = self._clock()
        return self._wait_s(max(self._tat, now), now)

    def book(self, tokens: int = 1) -> Slot:
        """Take the next slot (``tokens`` of them: the schedule moves by ``tokens / rate``).
        One that waits is the caller's once it wakes: :meth:`released`."""
        now = self._clock()
        self._recover(now)
        tat = max(self._tat, now)
        self._tat = tat + tokens / self.rate_mps
        slot = Slot(self._wait_s(tat, now), self._tat, self.rate_mps, self.epoch)
        if slot.wait_s <= 0:
            self._gone(slot)
        return slot

    def reserve(self, tokens: int = 1) -> float:
        """:meth:`book`, for how long to wait (0 = now), by a caller that does not wait for
        it here (a test, or one that sends at once)."""
        return self.book(tokens).wait_s

    def released(self, slot: Slot) -> bool:
        """The waiter of ``slot`` woke: whether it may send (no change voided the slot while
        it slept; else it books again), and if so its send is gone."""
        if slot.epoch != self.epoch:
            return False
        self._gone(slot)
        return True

    def set_ceiling(self, ceiling_mps: float) -> None:
        """A new ceiling and rate (a shared limiter's grant changed): the slots handed out at
        the old rate are void, as after a decrease, and their waiters book again. What is
        left of the slot last gone is kept, at the new rate."""
        now = self._clock()
        owed_s = self._carry_gone(now, ceiling_mps)
        self.ceiling_mps = self.rate_mps = ceiling_mps
        self._last_adjust = now
        self.epoch += 1
        self._tat = max(min(self._tat, now + 1.0 / ceiling_mps), now + owed_s)

    async def acquire(self, tokens: int = 1) -> float:
        """Wait for a token; return the seconds waited. A slot reserved before a decrease is
        void when its time comes: the waiter takes a slot in the slower schedule instead."""
        waited = 0.0
        while True:
            slot = self.book(tokens)
            if slot.wait_s <= 0:
                return waited
            await self._sleep(slot.wait_s)
            waited += slot.wait_s
            if self.released(slot):
                return waited

    def at_rest(self, now: float) -> bool:
        """Nothing booked ahead and the rate back at its ceiling: a new bucket would be the
        same, so dropping this one forgets nothing (no slot, no throttle)."""
        self._recover(now)  # catch the linear recovery up to now
        return self._tat <= now and self.rate_mps >= self.ceiling_mps

    def on_throttle(self) -> None:
        """The provider said too fast: slow this identity down (once per window)."""
        now = self._clock()
        self._recover(now)
        window = max(1.0, 2.0 / self.rate_mps)
        if now - self._last_decrease < window:
            return
        self._last_decrease = now
        floor = self.ceiling_mps * self.min_fraction
        lowered = max(floor, self.rate_mps * self.decrease_factor)
        owed_s = self._carry_gone(now, lowered)
        self.rate_mps = lowered
        # Void the slots handed out at the old rate (up to max_in_flight of them, seconds of
        # sends at a pace the provider just refused): their waiters take new slots at the
        # new spacing when they wake. Without this a decrease took effect only once the old
        # schedule had drained, and workers sharing a quota kept a quarter of calls throttled.
        self.epoch += 1
        self._tat = now + max(1.0 / self.rate_mps, owed_s)


class _Entry:
    """A bucket and when it was last handed out."""

    __slots__ = ("bucket", "last_used")

    def __init__(self, bucket: IdentityBucket, last_used: float) -> None:
        self.bucket = bucket
        self.last_used = last_used


@dataclass(frozen=True, slots=True)
class LimiterSnapshot:
    """A bounded view of the limiter for metrics and the progress log.

    ``recent`` names at most ``limit`` identities, the most recently used first (configured
    ones compete like the others); every other bucket is only counted, in ``others``, of
    which ``others_slowed`` have a rate below their ceiling (a throttle not yet recovered)
    and ``others_max_wait_s`` is the longest wait a request would have for its token.
    """

    recent: tuple[tuple[str, IdentityBucket], ...]
    others: int
    others_slowed: int
    others_max_wait_s: float

    @property
    def total(self) -> int:
        return len(self.recent) + self.others


class _Buckets(Mapping[str, IdentityBucket]):
    """The configured and the other buckets as one read-only mapping (a live view)."""

    __slots__ = ("_configured", "_lru")

    def __init__(self, configured: Mapping[str, _Entry], lru: Mapping[str, _Entry]) -> None:
        self._configured = configured
        self._lru = lru

    def __getitem__(self, identity: str) -> IdentityBucket:
        entry = self._lru.get(identity) or self._configured.get(identity)
        if entry is None:
            raise KeyError(identity)
        return entry.bucket

    def __iter__(self) -> Iterator[str]:
        yield from self._configured
        yield from self._lru

    def __len__(self) -> int:
        return len(self._configured) + len(self._lru)


class RateLimiter:
    """The ``local`` limiter backend (:mod:`worker.sending.limiter`): buckets by key (the
    origination identity), created on first use from the configured limits.

    Identities named in ``limits_mps`` always keep their bucket. The others come from
    producers and are bounded: they live in least-recently-used order and are dropped only
    *at rest* (nothing booked ahead and the rate back at its ceiling, so a new bucket would
    be the same and no reservation or throttle is forgotten): any idle for
    ``idle_expiry_s``, and while there are more than ``max_buckets`` of them, the least
    recently used ones not handed out for ``in_use_s`` (one handed out more recently may
    still be in its caller's hands). So the cap is exceeded only while more than
    ``max_buckets`` identities are busy (booked ahead, or recovering from a throttle for at
    most ``IdentityBucket.recovery_s``) or were used within ``in_use_s``; never for longer.

    ``bucket()`` is on the hot path and O(1) amortised: an eviction pass runs only when a
    bucket is created and looks at no more than ``EVICT_SCAN_MAX`` buckets.
    :meth:`snapshot` is the bounded view for metrics.
    """

    def __init__(
        self,
        limits_mps: Mapping[str, float],
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_buckets: int = MAX_BUCKETS,
        idle_expiry_s: float = IDLE_EXPIRY_S,
        in_use_s: float = IN_USE_S,
        quota_mps: Callable[[str], float] | None = None,
    ) -> None:
        self._limits = dict(limits_mps)
        # A key's ceiling: the settings' lookup (Settings.rate_for) when given.
        self._quota_mps = quota_mps or self._configured_rate
        self._burst_s = burst_s
        self._clock = clock
        self._max = max_buckets
        self._idle_expiry_s = idle_expiry_s
        self._in_use_s = in_use_s
        self._configured: dict[str, _Entry] = {}  # identities named in the limits: kept
        self._lru: OrderedDict[str, _Entry] = OrderedDict()  # the others, oldest use first
        self._view = _Buckets(self._configured, self._lru)

    def bucket(self, identity: str) -> IdentityBucket:
        """The identity's bucket, created on first use (hot path: O(1) amortised)."""
        now = self._clock()
        entry = self._lru.get(identity)
        if entry is not None:
            self._lru.move_to_end(identity)
            entry.last_used = now
            return entry.bucket
        entry = self._configured.get(identity)
        if entry is not None:
            entry.last_used = now
            return entry.bucket
        entry = _Entry(IdentityBucket(self._quota_mps(identity), self._burst_s, self._clock), now)
        if identity in self._limits:
            self._configured[identity] = entry
        else:
            self._lru[identity] = entry
            self._evict(now, spare_newest=True)
        return entry.bucket

    def _configured_rate(self, key: str) -> float:
        return self._limits.get(key, self._limits.get(DEFAULT_KEY, 20.0))

    # -- the Limiter interface --------------------------------------------------------------
    def next_wait_s(self, key: str, tokens: int = 1) -> float:
        # The wait is for the first token: the others push the next request's slot back.
        return self.bucket(key).next_wait_s()

    async def reserve(self, key: str, tokens: int = 1) -> float:
        return await self.bucket(key).acquire(tokens)

    def on_throttle(self, key: str) -> None:
        self.bucket(key).on_throttle()

    def rate_mps(self, key: str) -> float:
        return self.bucket(key).rate_mps

    def room(self, within_s: float, recent_s: float = ROOM_RECENT_S) -> Room | None:
        """The most sends that could get their tokens within ``within_s``, over the keys used
        in the last ``recent_s`` (``None``: none): configured ones, and the unconfigured ones
        from the newest end while recent."""
        since = self._clock() - recent_s
        # (a configured key still booked ahead is in use, however long ago it was booked)
        recent = [
            e
            for e in self._configured.values()
            if e.last_used >= since or e.bucket.next_wait_s() > 0
        ]
        for entry in reversed(self._lru.values()):
            if entry.last_used < since:
                break
            recent.append(entry)
        rooms = (Room.of(e.bucket.next_wait_s(), e.bucket.rate_mps, within_s) for e in recent)
        return max(rooms, default=None)

    def _evict(self, now: float, *, spare_newest: bool = False) -> None:
        """Drop unconfigured buckets at rest from the least recently used end: those idle
        past the expiry, and while over the cap those not used for ``in_use_s``. A bucket
        the pass cannot drop (booked ahead or slowed) moves to the other end, so the pass goes
        on past it next time; at most ``EVICT_SCAN_MAX`` buckets are looked at."""
        scan = min(EVICT_SCAN_MAX, len(self._lru) - (1 if spare_newest else 0))
        for _ in range(scan):
            identity, entry = next(iter(self._lru.items()))
            idle_s = now - entry.last_used
            over = len(self._lru) > self._max and idle_s >= self._in_use_s
            if not over and idle_s < self._idle_expiry_s:
                return  # the others were used more recently (or were moved past)
            if entry.bucket.at_rest(now):
                del self._lru[identity]
            else:
                self._lru.move_to_end(identity)  # its last use, not its place, ranks it

    def buckets(self) -> Mapping[str, IdentityBucket]:
        """Every bucket kept now, configured and not (a live, unbounded view: for metrics
        use :meth:`snapshot`)."""
        return self._view

    def snapshot(self, limit: int = SNAPSHOT_MAX) -> LimiterSnapshot:
        """A bounded view for metrics: the ``limit`` most recently used identities by name,
        the others aggregated. O(n log limit) in the buckets kept, at most ``max_buckets``
        plus the configured and the busy ones; it drops expired buckets first."""
        now = self._clock()
        self._evict(now)
        # Newest first, so that of buckets used at the same instant the later one ranks first.
        entries = [*reversed(self._lru.items()), *self._configured.items()]
        recent = heapq.nlargest(max(0, limit), entries, key=lambda item: item[1].last_used)
        named = {identity for identity, _ in recent}
        slowed, max_wait_s = 0, 0.0
        for identity, entry in entries:
            if identity in named:
                continue
            bucket = entry.bucket
            slowed += bucket.rate_mps < bucket.ceiling_mps
            max_wait_s = max(max_wait_s, bucket.next_wait_s())
        return LimiterSnapshot(
            recent=tuple((identity, entry.bucket) for identity, entry in recent),
            others=len(entries) - len(recent),
            others_slowed=slowed,
            others_max_wait_s=max_wait_s,
        )

    def most_recent(self, limit: int) -> list[tuple[str, IdentityBucket]]:
        """The ``limit`` most recently used buckets, newest first (``snapshot(limit).recent``)."""
        return list(self.snapshot(limit).recent)

    def sharing(self) -> None:
        """Not shared: each worker paces itself with the whole quota."""
        return None
