"""The account-wide cool-down (after AccessDenied or a quota error, nobody sends for a while)
and the per-channel pause (a channel's monthly spend limit reached: that channel waits for a
probe send to succeed while the other keeps sending)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from worker.logs import get_logger
from worker.sending.errors import ACCOUNT_STATE_REASONS

log = get_logger(__name__)


class Cooldown:
    def __init__(
        self,
        duration_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        spend_limit_probe_s: float = 300.0,
    ) -> None:
        self._duration_s = duration_s
        self._clock = clock
        #: The channels paused by a spend limit (what every reader of the cool-down reads).
        self.channels = ChannelPauses(spend_limit_probe_s, clock)
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
            disabled = reason.endswith(ACCOUNT_STATE_REASONS)
            log.warning(
                "cooldown_started",
                reason=reason,
                cooldown_s=self._duration_s,
                action=(
                    "every send stopped: the End User Messaging account is disabled or its "
                    "reputation too low; resolve it with AWS Support (the worker tries one "
                    "send after each cool-down)"
                    if disabled
                    else "sending paused for every identity; check the account's IAM "
                    "permissions and End User Messaging quotas"
                ),
            )

    async def wait_clear(self, stopping: asyncio.Event | None = None) -> None:
        """Return once no cool-down is active (or ``stopping`` is set)."""
        while self.active:
            if stopping is not None and stopping.is_set():
                return
            await asyncio.sleep(min(self.remaining_s, 1.0) + 0.001)
        self._end_if_due()


class ChannelPause:
    """One channel paused until a probe send succeeds (a monthly spend limit reached).

    While paused, the channel's requests go back to the queue; every ``probe_s`` one of them
    is let through (:meth:`admit` answers 0 to it) as a real send: a success resumes the
    channel (:meth:`resume`), the same refusal pauses it for another ``probe_s``
    (:meth:`pause`). A probe that ends otherwise, or never ends, frees the turn after
    ``probe_lease_s``."""

    def __init__(
        self,
        channel: str,
        probe_s: float,
        clock: Callable[[], float] = time.monotonic,
        probe_lease_s: float = 60.0,
    ) -> None:
        self.channel = channel
        self._probe_s = probe_s
        self._probe_lease_s = min(probe_lease_s, probe_s)
        self._clock = clock
        self._reason: str | None = None
        self._next_probe = 0.0
        self._probe_until = 0.0  # a probe is out until then
        self.started_total = 0
        self.probes_total = 0

    @property
    def reason(self) -> str | None:
        """Why the channel is paused (the Reason); None when it sends."""
        return self._reason

    @property
    def probe_s(self) -> float:
        return self._probe_s

    def admit(self) -> float:
        """0: a request of this channel may be sent now (not paused, or it is the probe);
        else how long to hand it back for. Taking the probe's turn is this call's effect."""
        if self._reason is None:
            return 0.0
        now = self._clock()
        if now < self._next_probe:
            return self._next_probe - now
        if now < self._probe_until:
            return max(1.0, self._probe_until - now)
        self._probe_until = now + self._probe_lease_s
        self.probes_total += 1
        log.info("channel_probe", channel=self.channel, reason=self._reason)
        return 0.0

    def pause(self, reason: str) -> None:
        """The channel's send was refused for ``reason``: no other send for ``probe_s``."""
        was_paused = self._reason is not None
        self._reason = reason
        self._next_probe = self._clock() + self._probe_s
        self._probe_until = 0.0
        if not was_paused:
            self.started_total += 1
            log.warning(
                "channel_paused",
                channel=self.channel,
                reason=reason,
                probe_every_s=self._probe_s,
                action=f"{self.channel} requests wait on the queue (the other channel keeps "
                "sending); raise the account's monthly spend limit for this channel in End "
                "User Messaging: the worker resumes by itself after its next probe send",
            )

    def resume(self) -> None:
        """A send of the channel went through: it is no longer paused."""
        if self._reason is not None:
            log.info("channel_resumed", channel=self.channel, reason=self._reason)
            self._reason = None
            self._probe_until = 0.0

    def probe_done(self) -> None:
        """A send of the channel ended neither sent nor refused for the limit: the next
        request may probe at once (no wait for the probe's lease)."""
        self._probe_until = 0.0


class ChannelPauses:
    """A :class:`ChannelPause` per channel name, created on first use."""

    def __init__(self, probe_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._probe_s = probe_s
        self._clock = clock
        self._pauses: dict[str, ChannelPause] = {}

    def __getitem__(self, channel: str) -> ChannelPause:
        pause = self._pauses.get(channel)
        if pause is None:
            pause = self._pauses[channel] = ChannelPause(channel, self._probe_s, self._clock)
        return pause

    def paused(self) -> dict[str, str]:
        """Each paused channel and why."""
        return {name: p.reason for name, p in sorted(self._pauses.items()) if p.reason}

    def started_total(self) -> dict[str, int]:
        return {name: p.started_total for name, p in sorted(self._pauses.items())}
