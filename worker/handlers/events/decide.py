"""What to do with one events-queue message: pure functions, one per stage.

:func:`on_parse` settles what needs no write (malformed, not ours); :func:`on_apply` what the
write answered (:class:`worker.status.delivery.Applied`). An event whose record does not
exist yet is left on the queue with a growing visibility delay, up to
:data:`RECORD_WAIT_RECEIVES` receives (about 7.5 minutes with the default 30 s base delay:
the record exists from the claim on, before the send, so a longer absence means it is no
record of this table); then it is counted, logged and deleted, never sent to the DLQ.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from worker.backoff import backoff_ceiling_s, compute_backoff_s
from worker.handlers.events.parse import Malformed, NotOurs, Result
from worker.handlers.held import Ack, Delete, HandBack, Release
from worker.status.delivery import Applied, ApplyResult

#: Receives an event waits for its record (or for a record that keeps changing) at most.
RECORD_WAIT_RECEIVES = 5


class Kind(enum.StrEnum):
    """What the observers are told (the ``event_outcomes`` metric's label)."""

    APPLIED = "applied"
    PROVEN = "proven"  # the event made a SENDING/RETRYING/AMBIGUOUS record SENT
    STALE = "stale"  # a duplicate, or outranked by what the record holds
    RECORD_MISSING = "record_missing"  # left on the queue: its record may come
    GAVE_UP = "record_missing_gave_up"  # no record after the bounded wait: deleted
    NOT_OURS = "not_ours"
    MALFORMED = "malformed"
    STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True, slots=True)
class Decision:
    ack: Ack
    kind: Kind


@dataclass(frozen=True, slots=True)
class Context:
    receive_count: int
    max_receive_count: int
    base_delay_s: int
    max_delay_s: int
    visibility_timeout_s: int


def on_parse(parsed: Result) -> Decision | None:
    """A body that is not an event of ours is deleted at once (``None``: write it)."""
    if isinstance(parsed, Malformed):
        return Decision(Delete(), Kind.MALFORMED)
    if isinstance(parsed, NotOurs):
        return Decision(Delete(), Kind.NOT_OURS)
    return None


def on_apply(ctx: Context, result: ApplyResult) -> Decision:
    if result.applied in (Applied.MISSING, Applied.CONTENDED):
        last = ctx.receive_count >= min(RECORD_WAIT_RECEIVES, ctx.max_receive_count)
        if last:
            return Decision(Delete(), Kind.GAVE_UP)
        delay_s = backoff_ceiling_s(ctx.receive_count, max(1, ctx.base_delay_s), ctx.max_delay_s)
        return Decision(Release(int(delay_s)), Kind.RECORD_MISSING)
    kind = {Applied.APPLIED: Kind.APPLIED, Applied.PROVEN: Kind.PROVEN}.get(
        result.applied, Kind.STALE
    )
    return Decision(Delete(), kind)


def store_failed(ctx: Context) -> Decision:
    """DynamoDB did not take the write: the event comes back after a growing delay."""
    delay_s = max(1, math.ceil(compute_backoff_s(ctx.receive_count, 2.0, ctx.visibility_timeout_s)))
    return Decision(HandBack(delay_s, "store_unavailable"), Kind.STORE_UNAVAILABLE)
