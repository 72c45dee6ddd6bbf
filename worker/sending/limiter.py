"""The rate limiter's interface, and the registry of its backends (a name -> a factory).

Everything that paces sends (the send handler, the sender, metrics, the progress log) talks to
a :class:`Limiter`, keyed by the channel's rate-limit key (today the origination identity).
A backend is a module and a registry entry; the worker builds it at start-up, once the AWS
clients are open, so a backend that shares a quota through DynamoDB can slot in. Today's one
backend is the in-process GCRA/AIMD limiter, :class:`worker.sending.ratelimit.RateLimiter`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from worker.health import DependencyHealth
from worker.settings import Settings

#: The keys :meth:`Limiter.room` looks at: those used this recently.
ROOM_RECENT_S = 10.0


def tokens_within(wait_s: float, rate_mps: float, within_s: float) -> int:
    """How many tokens can be booked to be sent within ``within_s`` from now, the next one
    ``wait_s`` away and the rest paced at ``rate_mps``."""
    if wait_s > within_s or rate_mps <= 0:
        return 0
    return math.floor((within_s - wait_s) * rate_mps) + 1


@dataclass(frozen=True, order=True)
class Room:
    """What one key has room for within a time: ``free`` more sends could get their tokens
    in it, ``full`` could with nothing booked (its pace over the time)."""

    free: int
    full: int

    @classmethod
    def of(cls, wait_s: float, rate_mps: float, within_s: float, waiting: int = 0) -> Room:
        """The room of a key whose next token is ``wait_s`` away, paced at ``rate_mps``, with
        ``waiting`` sends not booked yet."""
        full = tokens_within(0.0, rate_mps, within_s)
        return cls(tokens_within(wait_s, rate_mps, within_s) - waiting, full)


#: The room of what paces nothing (a route that sends no messages).
UNBOUNDED = Room(sys.maxsize, sys.maxsize)


class KeyRate(Protocol):
    """One key's pace, as metrics see it."""

    @property
    def rate_mps(self) -> float: ...

    @property
    def ceiling_mps(self) -> float: ...

    def next_wait_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class KeyShare:
    """One key's part of a shared quota, as this worker sees it."""

    key: str
    quota_mps: float  # configured (SMS_WORKER_RATE_LIMITS): the whole fleet's
    share_mps: float  # what this worker may send at now
    shared_rate_mps: float  # the fleet's rate after throttles (recovers to the quota)
    live_workers: int  # leases live at the last renewal, this worker's included
    fallback_s: float  # how long the key has been on the fallback share (0: it is not)

    @property
    def fallback(self) -> bool:
        return self.fallback_s > 0


@dataclass(frozen=True, slots=True)
class SharingView:
    """A shared limiter's state for metrics and /readyz."""

    backend: str
    writes_total: int  # lease writes (renewals, releases, shared decreases) made
    refused_total: int  # of those, refused by their condition (then read and made again)
    keys: tuple[KeyShare, ...]

    def fallback_keys(self, longer_than_s: float = 0.0) -> int:
        """Keys on the fallback share for longer than ``longer_than_s``."""
        return sum(share.fallback and share.fallback_s > longer_than_s for share in self.keys)


class Limiter(Protocol):
    def next_wait_s(self, key: str, tokens: int = 1) -> float:
        """How long a send of ``tokens`` (an SMS's message parts; an MMS is 1) for ``key``
        starting now would wait for its slot (books nothing)."""
        ...

    async def reserve(self, key: str, tokens: int = 1) -> float:
        """Book ``tokens`` of ``key``'s schedule and wait for the first; returns the seconds
        waited."""
        ...

    def on_throttle(self, key: str) -> None:
        """The provider said too fast for ``key``: slow it down."""
        ...

    def room(self, within_s: float) -> Room | None:
        """How many more sends could get their tokens within ``within_s`` from now: the most
        over the keys used in the last ``ROOM_RECENT_S``; ``None`` when no key was used that
        recently (what the next messages will wait is not known yet). The pollers receive no
        more than this (``hold_ahead_s``), and one receive at a time while ``None``."""
        ...

    def rate_mps(self, key: str) -> float:
        """``key``'s current allowed rate."""
        ...

    def most_recent(self, limit: int) -> Sequence[tuple[str, KeyRate]]:
        """The ``limit`` most recently used keys, newest first (a bounded view for metrics)."""
        ...

    def sharing(self) -> SharingView | None:
        """How the quota is shared with other workers (``None``: it is not)."""
        ...


@dataclass(frozen=True, slots=True)
class LimiterContext:
    """What a backend may need at start-up."""

    settings: Settings
    stack: AsyncExitStack  # to register a background service or a cleanup
    clients: Any = None  # worker.aws.clients.AwsClients, once open
    fast_path: Any = None  # worker.aws.fastpath.FastPath: the hot path's clients
    health: DependencyHealth | None = None  # failed calls are counted there


def _local(ctx: LimiterContext) -> Limiter:
    from worker.sending.ratelimit import RateLimiter

    s = ctx.settings
    # A bucket stays while a request may hold it: a token wait, then a lease of retries.
    return RateLimiter(
        s.rate_limits,
        s.rate_burst_s,
        in_use_s=s.max_token_wait_s + s.lease_s + 30,
        quota_mps=s.rate_for,
    )


def _dynamodb(ctx: LimiterContext) -> Limiter:
    from worker.sending.shared import SharedLimiter

    return SharedLimiter.from_context(ctx)


#: name -> factory. ``local``: each worker paces itself with the whole configured quota;
#: ``dynamodb``: the workers on one table divide each key's quota through rate-share leases.
LIMITERS: dict[str, Callable[[LimiterContext], Limiter]] = {"local": _local, "dynamodb": _dynamodb}
#: SMS_WORKER_RATE_SHARING -> the backend.
SHARING_BACKENDS = {"none": "local", "dynamodb": "dynamodb"}


def build_limiter(name: str, ctx: LimiterContext) -> Limiter:
    try:
        factory = LIMITERS[name]
    except KeyError:
        known = ", ".join(sorted(LIMITERS))
        raise ValueError(f"unknown rate limiter {name!r}: use one of {known}") from None
    return factory(ctx)
