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
from collections.abc import Awaitable, Callable, Mapping

DEFAULT_KEY = "default"


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
    """Buckets by origination identity, created on first use from the configured limits."""

    def __init__(
        self,
        limits_mps: Mapping[str, float],
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits_mps)
        self._burst_s = burst_s
        self._clock = clock
        self._buckets: dict[str, IdentityBucket] = {}

    def bucket(self, identity: str) -> IdentityBucket:
        bucket = self._buckets.get(identity)
        if bucket is None:
            ceiling = self._limits.get(identity, self._limits.get(DEFAULT_KEY, 20.0))
            bucket = IdentityBucket(ceiling, self._burst_s, self._clock)
            self._buckets[identity] = bucket
        return bucket

    def buckets(self) -> Mapping[str, IdentityBucket]:
        return self._buckets
