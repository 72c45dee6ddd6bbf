"""What to write and how to acknowledge: the send handler's decisions, as pure functions.

Nothing here does I/O or reads a clock it is not given, so each row of the contract's outcome
table (docs/contract.md, "What happens to each request") is one unit test with no servers
(``tests/unit/test_decide.py``). :mod:`worker.handlers.send.handler` carries decisions out.

:func:`decide` is called at each stage with what is known so far (the parsed request; then
the claim's result; then the send's result) and answers ``PROCEED`` (go on to the next stage)
or a :class:`Decision`: the status to write, the acknowledgement, the outcome event's kind.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from worker.backoff import backoff_ceiling_s, compute_backoff_s
from worker.handlers.held import Ack, Delete, HandBack, Release
from worker.model import InvalidRequest, ParsedRequest
from worker.sending.errors import ErrorKind, SendError
from worker.sending.sender import SendResult
from worker.status.model import AMBIGUOUS as AMBIGUOUS
from worker.status.model import RETRIES_EXHAUSTED as RETRIES_EXHAUSTED
from worker.status.model import (
    Claim,
    ClaimRefused,
    Outcome,
    RecordFields,
    Status,
)

INVALID_REQUEST = "INVALID_REQUEST"


class Kind(enum.StrEnum):
    """The outcome event's kind: what the listeners (metrics, logs, counters) are told."""

    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"  # a final FAILED written (refused, invalid)
    EXHAUSTED = "exhausted"  # FAILED/RETRIES_EXHAUSTED written: the DLQ takes it next
    EXPIRED = "expired"
    RETRYING = "retrying"
    DUPLICATE = "duplicate_skipped"
    LEASE_BUSY = "lease_busy"
    LEASE_LOST = "lease_lost"
    DEFERRED = "deferred"
    COOLDOWN = "cooldown"
    CHANNEL_PAUSED = "channel_paused"  # its channel's spend limit: handed back, no call
    SHUTDOWN = "shutdown"
    STORE_UNAVAILABLE = "store_unavailable"
    KEPT = "kept_on_last_receive"
    SENT_ABANDONED = "sent_abandoned"
    UNSETTLED = "unsettled_message"


@dataclass(frozen=True, slots=True)
class Decision:
    ack: Ack
    kind: Kind
    outcome: Outcome | None = None  # a status to write first (SENT: with ``message_id``)
    message_id: str | None = None
    cooldown: str | None = None  # start the account-wide cool-down for this error code
    pause_channel: str | None = None  # pause this channel (its spend limit was reached)
    seen_status: str | None = None  # refused: the status of the record that refused it


class _Proceed(enum.Enum):
    PROCEED = "proceed"


PROCEED: Final = _Proceed.PROCEED
Step = Decision | _Proceed


@dataclass(frozen=True, slots=True)
class Context:
    """What a decision depends on besides the request: the delivery and the worker's state."""

    receive_count: int
    max_receive_count: int
    now: datetime
    now_ms: int
    stopping: bool = False
    sms_outage: bool = False  # the SMS API answers nobody (health says so)
    cooldown_s: float = 300.0  # how long an account-wide error pauses sending
    cooldown_remaining_s: float = 0.0
    spend_limit_probe_s: float = 300.0  # how long a channel's spend limit pauses it
    redelivery_base_delay_s: int = 5
    redelivery_max_delay_s: int = 300
    reclaim_policy: str = "resend"  # resend | confirm | never (Settings.effective_reclaim_policy)
    reclaim_confirm_s: float = 600.0

    @property
    def last_receive(self) -> bool:
        return self.receive_count >= self.max_receive_count


def decide(
    ctx: Context,
    parsed: ParsedRequest | InvalidRequest,
    claim: Claim | ClaimRefused | None = None,
    result: SendResult | None = None,
) -> Step:
    """The next step for one delivery, from what is known so far."""
    if isinstance(parsed, InvalidRequest):
        outcome = Outcome(
            Status.FAILED,
            error_code=INVALID_REQUEST,
            error_reason=parsed.field,
            error_message=parsed.message,
        )
        return Decision(Delete(), Kind.FAILED, outcome)
    not_after = parsed.envelope.not_after
    if claim is None and not_after is not None and ctx.now > not_after:
        message = f"NotAfter {not_after.isoformat()} passed before the request could be sent"
        return Decision(Delete(), Kind.EXPIRED, Outcome(Status.EXPIRED, error_message=message))
    if claim is None:
        return PROCEED
    if isinstance(claim, ClaimRefused):
        return refused(ctx, claim)
    if result is None:
        return PROCEED
    if result.message_id is not None:
        return Decision(Delete(), Kind.SENT, Outcome(Status.SENT), message_id=result.message_id)
    assert result.error is not None
    return send_failed(ctx, result.error)


def refused(ctx: Context, existing: ClaimRefused) -> Decision:
    """Another delivery got there first: a duplicate (a final record this delivery may not
    re-open: :func:`worker.status.model.is_duplicate`), or a live claim elsewhere."""
    if existing.is_duplicate:
        return Decision(Delete(), Kind.DUPLICATE, seen_status=existing.status)
    wait_s = max(1, math.ceil((existing.lease_until_ms - ctx.now_ms) / 1000) + 1)
    return Decision(HandBack(wait_s, "lease_busy"), Kind.LEASE_BUSY, seen_status=existing.status)


def reclaim(ctx: Context, claim: Claim) -> Decision | None:
    """The reclaim policy (contract section 3), for a request claimed again after a send that
    may have gone out unseen (:attr:`Claim.ambiguous_since_ms`); ``None``: send it. ``resend``
    sends at once; ``never`` writes FAILED/AMBIGUOUS (a delivery event may still prove it
    SENT); ``confirm`` hands it back until ``reclaim_confirm_s`` after the ambiguous attempt
    (one visibility delay, so it burns one receive, not one per poll), then sends: an event
    in that time will have made it SENT, and this claim would have been refused."""
    since_ms = claim.ambiguous_since_ms
    if since_ms is None or ctx.reclaim_policy == "resend":
        return None
    if ctx.reclaim_policy == "never":
        return _never_resent(since_ms)
    wait_ms = since_ms + ctx.reclaim_confirm_s * 1000 - ctx.now_ms
    if wait_ms <= 0:
        return None  # no delivery event came for it in the time allowed: send it again
    return _await_confirmation(ctx, since_ms, math.ceil(wait_ms / 1000), AMBIGUOUS)


def _never_resent(since_ms: int) -> Decision:
    outcome = Outcome(
        Status.FAILED,
        error_code=AMBIGUOUS,
        error_reason="NO_ANSWER_AFTER_SEND",
        error_message="the send may have gone out unseen and the reclaim policy is never: "
        "not sent again (a delivery event for it makes it SENT)",
        ambiguous_at_ms=since_ms,
    )
    return Decision(Delete(), Kind.FAILED, outcome)


def _await_confirmation(ctx: Context, since_ms: int, wait_s: int, code: str) -> Decision:
    message = (
        f"the send may have gone out unseen: waiting up to {ctx.reclaim_confirm_s:g} s from "
        "the attempt for a delivery event before sending again (reclaim policy confirm)"
    )
    if ctx.last_receive:
        # Final before the dead-letter queue takes it; AmbiguousAt kept, so a replay from
        # there waits for the same confirmation.
        outcome = Outcome(Status.FAILED, RETRIES_EXHAUSTED, code, message, ambiguous_at_ms=since_ms)
        return Decision(Release(0), Kind.EXHAUSTED, outcome)
    outcome = Outcome(Status.RETRYING, code, "AWAITING_DELIVERY_EVENT", message, since_ms)
    return Decision(Release(max(1, wait_s)), Kind.RETRYING, outcome)


def send_failed(ctx: Context, error: SendError) -> Decision:
    """A claimed request's send failed: FAILED (refused, or out of receives) or RETRYING. A
    call that got no answer after its request was written is ambiguous: unless the policy is
    resend (then it is retried like any transient error), :func:`reclaim`'s rules apply from
    now on."""
    if error.ambiguous and ctx.reclaim_policy == "never":
        return _never_resent(ctx.now_ms)
    if error.ambiguous and ctx.reclaim_policy == "confirm":
        return _await_confirmation(ctx, ctx.now_ms, math.ceil(ctx.reclaim_confirm_s), error.code)
    if error.kind is ErrorKind.PERMANENT:
        outcome = Outcome(
            Status.FAILED,
            error_code=error.code,
            error_reason=error.reason,
            error_message=error.message,
        )
        return Decision(Delete(), Kind.FAILED, outcome)
    if error.kind is ErrorKind.CHANNEL:
        return _channel_paused(ctx, error)
    cooldown = error.cooldown_reason
    # The SMS API unreachable (no answer at all, while it fails for every call): the request
    # was never judged, so its last receive is kept rather than exhausted.
    outage = not error.answered and ctx.sms_outage
    if ctx.last_receive and not (outage and not ctx.stopping):
        outcome = Outcome(
            Status.FAILED,
            error_code=RETRIES_EXHAUSTED,
            error_reason=error.code,
            error_message=f"still failing on receive {ctx.receive_count} of "
            f"{ctx.max_receive_count}; last error {error.code}: {error.message}"[:1000],
        )
        # Visible at once: the next receive moves it to the dead-letter queue.
        return Decision(Release(0), Kind.EXHAUSTED, outcome, cooldown=cooldown)
    delay_s = int(
        backoff_ceiling_s(
            ctx.receive_count, ctx.redelivery_base_delay_s, ctx.redelivery_max_delay_s
        )
    )
    if cooldown is not None:
        delay_s = max(delay_s, math.ceil(ctx.cooldown_s))
    outcome = Outcome(
        Status.RETRYING,
        error_code=error.code,
        error_reason=error.reason,
        error_message=error.message,
    )
    # On the last allowed receive (the SMS API unreachable) the message is kept in the task
    # until the API answers, instead of burning its last receive into the DLQ.
    ack: Ack = HandBack(delay_s, "sms_unavailable") if ctx.last_receive else Release(delay_s)
    return Decision(ack, Kind.RETRYING, outcome, cooldown=cooldown)


def _channel_paused(ctx: Context, error: SendError) -> Decision:
    """A channel's monthly spend limit: RETRYING, back on the queue until the next probe. Its
    last receive is kept in the task rather than exhausted (the request was refused for the
    account's state, not for itself), unless the worker is stopping."""
    outcome = Outcome(
        Status.RETRYING,
        error_code=error.code,
        error_reason=error.reason,
        error_message=error.message,
    )
    if ctx.last_receive and ctx.stopping:
        return exhausted(ctx, "shutdown")
    delay_s = max(
        math.ceil(ctx.spend_limit_probe_s),
        int(backoff_ceiling_s(ctx.receive_count, ctx.redelivery_base_delay_s,
                              ctx.redelivery_max_delay_s)),
    )  # fmt: skip
    ack: Ack = HandBack(delay_s, "channel_paused") if ctx.last_receive else Release(delay_s)
    return Decision(ack, Kind.RETRYING, outcome, pause_channel=error.paused_channel)


def exhausted(ctx: Context, reason: str) -> Decision:
    """Last allowed receive, and the worker must let go (a shutdown): FAILED/RETRIES_EXHAUSTED
    first, so the dead-letter queue holds only final requests."""
    message = (
        f"handed back ({reason}) on receive {ctx.receive_count} of {ctx.max_receive_count}: "
        "the queue moves it to the dead-letter queue"
    )
    outcome = Outcome(
        Status.FAILED,
        error_code=RETRIES_EXHAUSTED,
        error_reason=reason.upper(),
        error_message=message,
    )
    # Left for the dead-letter queue, claimed or not: it was never sent, and a replay from
    # there (``sms-worker dlq replay``) sends it (deleting it would lose it).
    return Decision(Release(0), Kind.EXHAUSTED, outcome)


def before_claim(
    ctx: Context,
    token_wait_s: float,
    max_token_wait_s: float,
    jitter: float,
    channel_pause_s: float = 0.0,
) -> Decision | None:
    """Whether to hand the message back before claiming it: a cool-down, its channel paused
    (``channel_pause_s``: till its next probe), or an identity booked further ahead than a
    message should be held (``jitter`` in [0, 1) spreads those out)."""
    if ctx.stopping:
        return Decision(HandBack(0, "shutdown"), Kind.SHUTDOWN)
    if ctx.cooldown_remaining_s > 0:
        return Decision(HandBack(math.ceil(ctx.cooldown_remaining_s), "cooldown"), Kind.COOLDOWN)
    if channel_pause_s > 0:
        back = HandBack(math.ceil(channel_pause_s), "channel_paused")
        return Decision(back, Kind.CHANNEL_PAUSED)
    if token_wait_s > max_token_wait_s and ctx.receive_count < ctx.max_receive_count - 1:
        # Hand it back for when its turn comes, so it holds no slot a faster identity needs.
        delay_s = math.ceil(token_wait_s * (1 + jitter / 2))
        return Decision(HandBack(delay_s, "deferred"), Kind.DEFERRED)
    return None


def store_failed(ctx: Context, visibility_timeout_s: int, claim: Claim | None) -> HandBack:
    """DynamoDB did not take a write: hand the message back, visible again after a growing
    delay within the visibility timeout (the record, if any, is unchanged). With our claim
    standing, not before its lease has passed: no other delivery may send before then."""
    vis = visibility_timeout_s
    delay_s = max(1, math.ceil(compute_backoff_s(ctx.receive_count, 2.0, vis)))
    if claim is not None:
        lease_left_s = (claim.lease_until_ms - ctx.now_ms) / 1000
        delay_s = max(delay_s, math.ceil(lease_left_s) + 1)
    return HandBack(min(delay_s, max(vis, 1)), "store_unavailable")


def record_fields(
    parsed: ParsedRequest | InvalidRequest, sqs_message_id: str, receive_count: int
) -> RecordFields:
    """What the status record copies from this delivery of the request."""
    if isinstance(parsed, InvalidRequest):
        return RecordFields(
            parsed.request_id,
            sqs_message_id,
            receive_count,
            parsed.campaign_id,
            parsed.destination,
            parsed.identity,
        )
    return RecordFields(
        parsed.request_id,
        sqs_message_id,
        receive_count,
        parsed.envelope.campaign_id,
        parsed.destination,
        parsed.identity,
        parsed.dry_run,
        parsed.channel.name,
        parsed.parts,
    )
