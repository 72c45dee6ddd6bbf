"""The account-wide cool-down: after AccessDenied or a quota error, nobody sends for a while."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from worker.logs import get_logger

log = get_logger(__name__)


class Cooldown:
    def __init__(self, duration_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._duration_s = duration_s
        self._clock = clock
        self._until = 0.0
        self._reason: str | None = None
        self.started_total = 0

    @property
    def reason(self) -> str | None:
        return self._reason if self.active else None

    @property
    def remaining_s(self) -> float:
        return max(0.0, self._until - self._clock())

    @property
    def active(self) -> bool:
        return self._reason is not None and self._clock() < self._until

    @property
    def duration_s(self) -> float:
        return self._duration_s

    def _end_if_due(self) -> None:
        """Log the end of a cool-down whose time has passed (once)."""
        if self._reason is not None and not self.active:
            log.info("cooldown_ended", reason=self._reason)
            self._reason = None

    def trigger(self, reason: str) -> None:
        """Start (or extend) the cool-down because of an account-wide error ``reason``."""
        self._end_if_due()
        was_active = self.active
        self._until = self._clock() + self._duration_s
        self._reason = reason
        if not was_active:
            self.started_total += 1
            log.warning(
                "cooldown_started",
                reason=reason,
                cooldown_s=self._duration_s,
                action="sending paused for every identity; check the account's IAM permissions"
                " and End User Messaging quotas",
            )

    async def wait_clear(self, stopping: asyncio.Event | None = None) -> None:
        """Return once no cool-down is active (or ``stopping`` is set)."""
        while self.active:
            if stopping is not None and stopping.is_set():
                return
            await asyncio.sleep(min(self.remaining_s, 1.0) + 0.001)
        self._end_if_due()
