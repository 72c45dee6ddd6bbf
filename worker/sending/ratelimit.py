"""Per-origination-identity rate limits with additive-increase/multiplicative-decrease.

Each identity gets its own bucket (GCRA, the virtual-scheduling form of a token bucket): an
``acquire`` reserves the next slot in O(1) and sleeps until it, so a slow identity's waiters
never hold up a fast one's. The configured rate is the ceiling; a ``ThrottlingException``
lowers the identity's rate multiplicatively (at most once per decrease window, so one burst of
throttles counts once) and it climbs back linearly to the ceiling.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

DEFAULT_KEY = "default"
# Identities come from producers: the buckets of those not configured are kept in LRU order
# and dropped once idle (see RateLimiter._evict), so a campaign of a million sender ids
# cannot grow the worker's memory or its metrics without bound.
MAX_BUCKETS = 1_000
IDLE_EXPIRY_S = 600.0


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
        self._last_adjust = self._tat
        self._last_decrease = -1e18
        self.epoch = 0  # changes when a decrease voids the slots handed out before it

    def _recover(self, now: float) -> None:
        if self.rate_mps < self.ceiling_mps:
            step = self.ceiling_mps * (now - self._last_adjust) / self.recovery_s
            self.rate_mps = min(self.ceiling_mps, self.rate_mps + step)
        self._last_adjust = now

    def _wait_s(self, tat: float, now: float) -> float:
        """How long the slot at ``tat`` waits from ``now``, less the burst tolerance."""
        tolerance_s = max(0.0, self._burst_s * self.rate_mps - 1.0) / self.rate_mps
        return max(0.0, tat - tolerance_s - now)

    def next_wait_s(self) -> float:
        """How long a request arriving now would wait for its token (reserves nothing)."""
        now = self._clock()
        return self._wait_s(max(self._tat, now), now)

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it (0 = now)."""
        now = self._clock()
        self._recover(now)
        tat = max(self._tat, now)
        self._tat = tat + 1.0 / self.rate_mps
        return self._wait_s(tat, now)

    async def acquire(self) -> float:
        """Wait for a token; return the seconds waited. A slot reserved before a decrease is
        void when its time comes: the waiter takes a slot in the slower schedule instead."""
        waited = 0.0
        while True:
            epoch = self.epoch
            delay = self.reserve()
            if delay <= 0:
                return waited
            await self._sleep(delay)
            waited += delay
            if self.epoch == epoch:
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
        self.rate_mps = max(floor, self.rate_mps * self.decrease_factor)
        # Void the slots handed out at the old rate (up to max_in_flight of them, seconds of
        # sends at a pace the provider just refused): their waiters take new slots at the
        # new spacing when they wake. Without this a decrease took effect only once the old
        # schedule had drained, and workers sharing a quota kept a quarter of calls throttled.
        self.epoch += 1
        self._tat = now + 1.0 / self.rate_mps


class RateLimiter:
    """Buckets by origination identity, created on first use from the configured limits.

    Configured identities keep their bucket; the others live in least-recently-used order, at
    most ``max_buckets`` of them, and one idle for ``idle_expiry_s`` and at rest is dropped."""

    def __init__(
        self,
        limits_mps: Mapping[str, float],
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_buckets: int = MAX_BUCKETS,
        idle_expiry_s: float = IDLE_EXPIRY_S,
    ) -> None:
        self._limits = dict(limits_mps)
        self._burst_s = burst_s
        self._clock = clock
        self._max = max_buckets
        self._idle_expiry_s = idle_expiry_s
        self._buckets: OrderedDict[str, IdentityBucket] = OrderedDict()
        self._last_used: dict[str, float] = {}

    def bucket(self, identity: str) -> IdentityBucket:
        now = self._clock()
        bucket = self._buckets.get(identity)
        if bucket is None:
            ceiling = self._limits.get(identity, self._limits.get(DEFAULT_KEY, 20.0))
            bucket = IdentityBucket(ceiling, self._burst_s, self._clock)
            self._buckets[identity] = bucket
            self._evict(now)
        else:
            self._buckets.move_to_end(identity)
        self._last_used[identity] = now
        return bucket

    def _evict(self, now: float) -> None:
        """Drop unconfigured buckets at rest from the least recently used end: all that are
        idle past the expiry, and more while over the cap. O(1) amortised per new bucket."""
        victims: list[str] = []
        for identity, bucket in self._buckets.items():
            if identity in self._limits:
                continue
            over = len(self._buckets) - len(victims) > self._max
            idle = now - self._last_used.get(identity, now) >= self._idle_expiry_s
            if not (over or idle):
                break  # the rest were used more recently
            if bucket.at_rest(now):
                victims.append(identity)
            elif not over:
                break
        for identity in victims:
            del self._buckets[identity]
            self._last_used.pop(identity, None)

    def buckets(self) -> Mapping[str, IdentityBucket]:
        return self._buckets

    def most_recent(self, limit: int) -> list[tuple[str, IdentityBucket]]:
        """The ``limit`` most recently used buckets, newest first (a bounded view for
        metrics and the progress log)."""
        out: list[tuple[str, IdentityBucket]] = []
        for identity in reversed(self._buckets):
            out.append((identity, self._buckets[identity]))
            if len(out) >= limit:
                break
        return out
