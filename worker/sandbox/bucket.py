"""Token buckets, one per origination identity and channel, as the service's MPS limit is
(SMS counted in message parts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from worker.sandbox.config import SandboxConfig

Clock = Callable[[], float]


def most_in_window(times: Iterable[float], window: float) -> int:
    """The most of ``times`` inside any window of length ``window`` (their unit): what a
    bucket of ``rate`` and ``capacity`` holds to ``capacity + rate * window``. The quota tests
    and the benchmark check the record of sends against it."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class TokenBucket:
    """Holds up to ``capacity`` tokens, refilled at ``rate`` tokens per second; starts full."""

    __slots__ = ("_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if not rate > 0 or not capacity > 0:
            raise ValueError("rate and capacity must be > 0")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._stamp = now

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (monotonic seconds)."""
        elapsed = max(0.0, now - self._stamp)
        return min(self.capacity, self._tokens + elapsed * self.rate)

    def try_take(self, now: float, count: float = 1.0) -> bool:
        """Take ``count`` tokens if there are (a full bucket when ``count`` is more than it
        holds: the rest is a debt refilled first); ``False`` means throttled."""
        tokens = self.tokens(now)
        self._stamp = max(self._stamp, now)
        if tokens >= min(count, self.capacity):
            self._tokens = tokens - count
            return True
        self._tokens = tokens
        return False


class RateLimiter:
    """The per-identity buckets of one :class:`SandboxConfig`."""

    def __init__(self, config: SandboxConfig, clock: Clock = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def try_acquire(self, identity: str, channel: str = "MMS", parts: int = 1) -> bool:
        """Take ``parts`` tokens for a send from ``identity`` on ``channel`` (each channel
        has its own bucket); ``False`` means throttled."""
        rate = self._config.rate_for(identity, channel)
        if rate is None:
            return True
        now = self._clock()
        key = f"{identity}/{channel}"
        bucket = self._buckets.get(key)
        if bucket is None:
            capacity = max(1.0, self._config.burst_s * rate)
            bucket = self._buckets[key] = TokenBucket(rate, capacity, now)
        return bucket.try_take(now, parts)
