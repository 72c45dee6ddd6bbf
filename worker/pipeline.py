"""One message's way through the worker: parse -> (expire) -> rate -> claim -> send -> record.

Two invariants hold whatever fails (see docs/failure-semantics.md):

* **A held message always leaves by a delete or a hand-back.** Every way out of ``handle``
  settles its message (``_delete``, ``_release`` or ``_hand_back``), and ``handle``'s
  ``finally`` (or, when a shielded conclusion outlives a cancelled task, that conclusion's done
  callback) settles whatever is left. Settling is what stops the visibility extender, so the
  extender only ever extends a message a live task is working on.
* **A hand-back never sends a message to the dead-letter queue without a final status.** On
  the queue's last allowed receive the worker keeps the message and tries again (a cool-down,
  a busy lease or DynamoDB being down is waited out in the task); only a shutdown hands it
  back then, after recording ``FAILED``/``RETRIES_EXHAUSTED``.

The outcome decides the acknowledgement. Each step logs one event with fixed keys; the
request's identifiers are bound once through ``structlog.contextvars``. The final status write
and its acknowledgement run shielded from cancellation, so a shutdown never turns an accepted
send into a resend; a SENT outcome is held (see :mod:`worker.status.sent_writer`) until
DynamoDB takes it.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from worker.aws.errors import describe, is_unavailable
from worker.backoff import backoff_ceiling_s, compute_backoff_s
from worker.health import DYNAMODB, SMS, DependencyHealth
from worker.logs import get_logger
from worker.metrics import Metrics
from worker.model import InvalidRequest, mask_identity, parse_request
from worker.queue.acks import AckBatcher
from worker.queue.extender import VisibilityExtender
from worker.queue.message import QueueMessage
from worker.sending.cooldown import Cooldown
from worker.sending.errors import ErrorKind, SendError
from worker.sending.ratelimit import RateLimiter
from worker.sending.sender import Sender, SendProgress, SendResult
from worker.settings import Settings
from worker.status.counters import CampaignCounters
from worker.status.sent_writer import SentAbandoned, SentWriter
from worker.status.store import (
    EXPIRED,
    FAILED,
    RETRYING,
    SENT,
    Claim,
    Existing,
    Outcome,
    RequestInfo,
    StatusStore,
)

log = get_logger(__name__)

INVALID_REQUEST = "INVALID_REQUEST"
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
# On the last allowed receive a hand-back is retried in the task after at most this long,
# or as soon as the dependency it waits for answers again.
KEEP_RETRY_MAX_S = 5.0
_WAITS_FOR = {"store_unavailable": DYNAMODB, "sms_unavailable": SMS}


class Phase(enum.Enum):
    WAITING = "waiting"  # received, not claimed: safe to hand back at once
    SENDING = "sending"  # claimed: let it finish within the grace period
    CONCLUDING = "concluding"  # writing its outcome, shielded from cancellation
    DONE = "done"


@dataclass(slots=True)
class Held:
    """A message this worker holds, how far it got, and whether it has been let go."""

    message: QueueMessage
    phase: Phase = Phase.WAITING
    progress: SendProgress = field(default_factory=SendProgress)
    settled: bool = False  # deleted or handed back: the worker no longer holds it
    info: RequestInfo | None = None
    claim: Claim | None = None
    conclusion: asyncio.Task[HandBack | None] | None = None
    orphaned: bool = False  # no task awaits ``conclusion``: it settles the message itself


@dataclass(frozen=True, slots=True)
class HandBack:
    """The message should go back to the queue, visible again in ``delay_s``."""

    delay_s: int
    reason: str


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        store: StatusStore,
        sent_writer: SentWriter,
        counters: CampaignCounters | None,
        sender: Sender,
        limiter: RateLimiter,
        acks: AckBatcher,
        extender: VisibilityExtender,
        cooldown: Cooldown,
        metrics: Metrics,
        health: DependencyHealth,
        stopping: asyncio.Event,
        max_receive_count: int,
    ) -> None:
        self._s = settings
        self._store = store
        self._sent_writer = sent_writer
        self._counters = counters
        self._sender = sender
        self._limiter = limiter
        self._acks = acks
        self._extender = extender
        self._cooldown = cooldown
        self._metrics = metrics
        self._health = health
        self._stopping = stopping
        self.max_receive_count = max_receive_count
        # Shielded conclusions still running after their task was cancelled.
        self.concluding: set[asyncio.Task[Any]] = set()

    async def handle(self, held: Held) -> None:
        msg = held.message
        structlog.contextvars.bind_contextvars(
            sqs_message_id=msg.message_id, receive_count=msg.receive_count
        )
        try:
            log.debug("received")
            while True:
                back = await self._attempt(held)
                if back is None or held.settled:
                    return
                if not self._last_receive(msg) or self._stopping.is_set():
                    self._hand_back(held, back.delay_s, back.reason)
                    return
                # A hand-back now would move the message to the dead-letter queue with no
                # final status: keep it (this task works on it) and try again.
                self._metrics.kept_last_receive += 1
                wait_s = min(float(back.delay_s), KEEP_RETRY_MAX_S)
                log.info("kept_on_last_receive", reason=back.reason, retry_in_s=wait_s)
                dependency = _WAITS_FOR.get(back.reason)
                if dependency is not None and self._health.failing(dependency):
                    await self._health.wait_recovered(dependency, wait_s)
                else:
                    await asyncio.sleep(wait_s)
                held.phase, held.claim, held.progress = Phase.WAITING, None, SendProgress()
        except asyncio.CancelledError:
            self._on_cancel(held)
            raise
        finally:
            self._ensure_settled(held)

    # -- one attempt -----------------------------------------------------------------------
    async def _attempt(self, held: Held) -> HandBack | None:
        """Take the message as far as it goes; ``None`` once it is settled (or a shielded
        conclusion will settle it), else the hand-back asked for."""
        msg = held.message
        if self._stopping.is_set():
            return HandBack(0, "shutdown")
        parsed = parse_request(msg.body, sqs_message_id=msg.message_id)
        if isinstance(parsed, InvalidRequest):
            info = held.info = RequestInfo(
                parsed.request_id,
                msg.message_id,
                msg.receive_count,
                parsed.campaign_id,
                parsed.destination,
                parsed.identity,
            )
            structlog.contextvars.bind_contextvars(request_id=info.request_id)
            outcome = Outcome(
                FAILED,
                error_code=INVALID_REQUEST,
                error_reason=parsed.field,
                error_message=parsed.message,
            )
            return await self._shielded(held, self._record_without_call(held, info, outcome))
        identity = parsed.rate_key
        info = held.info = RequestInfo(
            parsed.request_id,
            msg.message_id,
            msg.receive_count,
            parsed.envelope.campaign_id,
            parsed.destination,
            parsed.identity,
            parsed.dry_run,
        )
        structlog.contextvars.bind_contextvars(
            request_id=info.request_id, identity=mask_identity(identity)
        )
        not_after = parsed.envelope.not_after
        if not_after is not None and datetime.now(UTC) > not_after:
            outcome = Outcome(
                EXPIRED,
                error_message=f"NotAfter {not_after.isoformat()} passed before "
                "the request could be sent",
            )
            return await self._shielded(held, self._record_without_call(held, info, outcome))
        if self._cooldown.active:
            return HandBack(math.ceil(self._cooldown.remaining_s), "cooldown")
        bucket = self._limiter.bucket(identity)
        wait_s = bucket.next_wait_s()
        if wait_s > self._s.max_token_wait_s and msg.receive_count < (self.max_receive_count - 1):
            # This identity is booked further ahead than a message should be held: hand
            # it back for when its turn comes, so it holds no slot a faster identity needs.
            self._metrics.deferred += 1
            delay_s = math.ceil(wait_s * (1 + random.random() / 2))
            log.info("deferred", wait_s=round(wait_s, 1), visible_in_s=delay_s)
            return HandBack(delay_s, "deferred")
        await bucket.acquire()
        if self._stopping.is_set():
            return HandBack(0, "shutdown")
        if self._cooldown.active:
            return HandBack(math.ceil(self._cooldown.remaining_s), "cooldown")
        # From the claim on, a shutdown lets this request finish (within the grace
        # period) instead of handing it back: a claim cut short would leave a live lease.
        held.phase = Phase.SENDING
        lease_deadline = time.monotonic() + self._s.lease_s  # taken before the claim is made
        try:
            claimed = await self._store.claim(info)
        except Exception as exc:
            return self._store_failed(held, exc, "claim")
        if isinstance(claimed, Existing):
            return self._not_ours(held, claimed)
        claim = held.claim = claimed
        log.info("claimed", attempt=claim.attempts)
        result = await self._sender.send(
            parsed.api_params(),
            identity,
            first_token_held=True,
            progress=held.progress,
            deadline=lease_deadline,
            channel=parsed.channel,
        )
        return await self._shielded(held, self._conclude(held, claim, info, result))

    # -- outcomes --------------------------------------------------------------------------
    async def _record_without_call(
        self, held: Held, info: RequestInfo, outcome: Outcome
    ) -> HandBack | None:
        try:
            existing = await self._store.record_without_call(info, outcome)
        except Exception as exc:
            return self._store_failed(held, exc, "record")
        if existing is not None:
            return self._not_ours(held, existing)
        self._count(info, outcome.status, outcome.error_code)
        if outcome.status == EXPIRED:
            self._metrics.expired += 1
            log.info("expired")
        else:
            self._metrics.failed[outcome.error_code or FAILED] += 1
            log.info(
                "failed",
                error_code=outcome.error_code,
                error_reason=outcome.error_reason,
                error_message=outcome.error_message,
            )
        self._delete(held)
        return None

    async def _conclude(
        self, held: Held, claim: Claim, info: RequestInfo, result: SendResult
    ) -> HandBack | None:
        attempt = claim.attempts + max(0, result.calls - 1)
        if result.message_id is not None:
            # Held until durable, before the delete: an acknowledged request always has its
            # status, and a SENT outcome is never dropped into a resend.
            try:
                await self._sent_writer.write(claim, info, result.message_id, result.calls)
            except SentAbandoned:
                self._metrics.sent_abandoned += 1
                self._let_go(held, "sent_abandoned")
                return None
            self._count(info, SENT, None)
            self._metrics.sent += 1
            log.info(
                "sent",
                attempt=attempt,
                latency_ms=round(result.latency_ms, 1),
                dry_run=info.dry_run or None,
            )
            self._delete(held)
            return None
        assert result.error is not None
        outcome = self._failure_outcome(held.message, result.error)
        return await self._finish(held, claim, info, outcome, result.calls, result.error)

    async def _finish(
        self,
        held: Held,
        claim: Claim,
        info: RequestInfo,
        outcome: Outcome,
        calls: int,
        error: SendError,
    ) -> HandBack | None:
        """Write a claimed request's FAILED/RETRYING outcome, retrying through a DynamoDB
        fault while the worker runs (the message stays held meanwhile), then acknowledge."""
        attempt = claim.attempts + max(0, calls - 1)
        tries = 0
        while True:
            tries += 1
            try:
                lost = await self._store.finish(claim, info, outcome, calls)
                break
            except Exception as exc:
                if not is_unavailable(exc) or self._stopping.is_set():
                    return self._store_failed(held, exc, "finish")
                await asyncio.sleep(compute_backoff_s(tries, 0.1, 5.0))
        if lost is not None:
            log.warning(
                "lease_lost",
                status=outcome.status,
                now_status=lost.status,
                attempt=attempt,
                action="raise lease_s above the longest send (retry budget + timeouts)",
            )
            return self._not_ours(held, lost)
        if outcome.status == FAILED:
            self._count(info, FAILED, outcome.error_code)
        fields = {
            "attempt": attempt,
            "error_code": outcome.error_code,
            "error_reason": outcome.error_reason,
        }
        if outcome.status == RETRYING:
            delay_s = self._redelivery_delay_s(held.message.receive_count, error)
            self._metrics.retrying[error.code] += 1
            log.info("retrying", **fields, visible_in_s=delay_s)
            if self._last_receive(held.message):
                return HandBack(delay_s, "sms_unavailable")  # kept: see _failure_outcome
            self._release(held, delay_s)
        elif outcome.error_code == RETRIES_EXHAUSTED:
            self._metrics.failed[RETRIES_EXHAUSTED] += 1
            log.warning("failed", **fields, max_receive_count=self.max_receive_count)
            self._release(held, 0)  # the next receive moves it to the dead-letter queue
        else:
            self._metrics.failed[error.code] += 1
            log.info("failed", **fields, error_message=error.message)
            self._delete(held)
        return None

    async def _exhaust(self, held: Held, reason: str) -> HandBack | None:
        """Last allowed receive, and the worker must let go (a shutdown): record
        FAILED/RETRIES_EXHAUSTED first, so the dead-letter queue holds only final requests."""
        info = held.info
        outcome = Outcome(
            FAILED,
            error_code=RETRIES_EXHAUSTED,
            error_reason=reason.upper(),
            error_message=f"handed back ({reason}) on receive {held.message.receive_count} of "
            f"{self.max_receive_count}: the queue moves it to the dead-letter queue",
        )
        if info is None:
            return HandBack(0, reason)
        if held.claim is not None:
            error = SendError(
                ErrorKind.TRANSIENT, reason.upper(), None, outcome.error_message or ""
            )
            return await self._finish(
                held, held.claim, info, outcome, max(1, held.progress.calls), error
            )
        return await self._record_without_call(held, info, outcome)

    def _count(self, info: RequestInfo, status: str, error_code: str | None) -> None:
        """Count a final status just written, for its campaign's progress counters."""
        if self._counters is not None and info.campaign_id is not None:
            self._counters.record(info.campaign_id, status, error_code)

    def _last_receive(self, message: QueueMessage) -> bool:
        return message.receive_count >= self.max_receive_count

    def _failure_outcome(self, message: QueueMessage, error: SendError) -> Outcome:
        if error.kind is ErrorKind.PERMANENT:
            return Outcome(
                FAILED,
                error_code=error.code,
                error_reason=error.reason,
                error_message=error.message,
            )
        if error.kind is ErrorKind.ACCOUNT:
            self._cooldown.trigger(error.code)
        # The SMS API unreachable (no answer at all, while it fails for every call): the
        # request was never judged, so its last receive is kept rather than exhausted.
        outage = not error.answered and self._health.failing(SMS)
        if self._last_receive(message) and not (outage and not self._stopping.is_set()):
            return Outcome(
                FAILED,
                error_code=RETRIES_EXHAUSTED,
                error_reason=error.code,
                error_message=f"still failing on receive {message.receive_count} of "
                f"{self.max_receive_count}; last error {error.code}: {error.message}"[:1000],
            )
        # RETRYING; on the last allowed receive only while the SMS API is unreachable (not this
        # request's fault), and then the message is kept in the task until the API answers,
        # instead of burning its last receive into the DLQ.
        return Outcome(
            RETRYING, error_code=error.code, error_reason=error.reason, error_message=error.message
        )

    def _redelivery_delay_s(self, receive_count: int, error: SendError) -> int:
        s = self._s
        delay = backoff_ceiling_s(
            receive_count, s.redelivery_base_delay_s, s.redelivery_max_delay_s
        )
        if error.kind is ErrorKind.ACCOUNT:
            delay = max(delay, math.ceil(self._cooldown.remaining_s))
        return int(delay)

    def _store_failed(self, held: Held, exc: Exception, op: str) -> HandBack:
        """DynamoDB did not take a write: hand the message back, visible again after a
        growing delay within the visibility timeout (the record, if any, is unchanged)."""
        vis = self._s.visibility_timeout_s
        delay_s = max(1, math.ceil(compute_backoff_s(held.message.receive_count, 2.0, vis)))
        log.error(
            "store_unavailable",
            op=op,
            error=describe(exc),
            visible_in_s=delay_s,
            action="the message is handed back and delivered again; check DynamoDB",
        )
        self._metrics.store_errors += 1
        if held.claim is not None and op != "claim":
            # Our claim still stands: no other delivery may send before it lapses.
            lease_left_s = (held.claim.lease_until_ms - time.time() * 1000) / 1000
            delay_s = max(delay_s, math.ceil(lease_left_s) + 1)
        return HandBack(min(delay_s, max(vis, 1)), "store_unavailable")

    def _not_ours(self, held: Held, existing: Existing) -> HandBack | None:
        """Another delivery got there first: a duplicate, or a live claim elsewhere."""
        if existing.is_final:
            self._metrics.duplicates += 1
            log.info("duplicate_skipped", status=existing.status)
            self._delete(held)
            return None
        wait_s = max(1, math.ceil((existing.lease_until_ms - time.time() * 1000) / 1000) + 1)
        self._metrics.lease_busy += 1
        log.info("lease_busy", status=existing.status, visible_in_s=wait_s)
        return HandBack(wait_s, "lease_busy")

    # -- cancellation ----------------------------------------------------------------------
    def _on_cancel(self, held: Held) -> None:
        if held.settled:
            return
        if held.phase is Phase.CONCLUDING and held.conclusion is not None:
            # The shielded conclusion goes on; it settles the message when it ends.
            held.orphaned = True
            if held.conclusion.done():
                self._act_on(held, held.conclusion)
            return
        if held.phase is Phase.WAITING:
            self._hand_back(held, 0, "shutdown")
            return
        claim, info, progress = held.claim, held.info, held.progress
        if claim is None or info is None:
            # Cancelled inside the claim call: it may have been written, so the lease may
            # stand; the message comes back when it has passed.
            self._hand_back(held, math.ceil(self._s.lease_s), "shutdown")
            return
        if progress.in_call:
            # The provider may have accepted it: keep the claim (its lease stops other
            # workers) and hand the message back for when the lease has passed.
            log.warning("abandoned_in_call", attempt=claim.attempts + progress.calls - 1)
            lease_left_s = (claim.lease_until_ms - time.time() * 1000) / 1000
            self._hand_back(held, max(1, math.ceil(lease_left_s) + 1), "abandoned_in_call")
            return
        error = progress.last_error or SendError(
            ErrorKind.TRANSIENT, "SHUTDOWN", None, "worker stopped between retries"
        )
        result = SendResult(None, error, progress.calls, 0.0)
        self._start_conclusion(held, self._conclude(held, claim, info, result), awaited=False)

    # -- shielded conclusions --------------------------------------------------------------
    async def _shielded(
        self, held: Held, coro: Coroutine[Any, Any, HandBack | None]
    ) -> HandBack | None:
        task = self._start_conclusion(held, coro, awaited=True)
        back = await asyncio.shield(task)
        held.conclusion = None
        return back

    def _start_conclusion(
        self, held: Held, coro: Coroutine[Any, Any, HandBack | None], *, awaited: bool
    ) -> asyncio.Task[HandBack | None]:
        held.phase = Phase.CONCLUDING
        held.orphaned = not awaited
        task = asyncio.ensure_future(coro)
        held.conclusion = task
        self.concluding.add(task)
        task.add_done_callback(lambda t: self._concluded(held, t))
        return task

    def _concluded(self, held: Held, task: asyncio.Task[HandBack | None]) -> None:
        self.concluding.discard(task)
        if held.orphaned and held.conclusion is task:
            self._act_on(held, task)

    def _act_on(self, held: Held, task: asyncio.Task[HandBack | None]) -> None:
        """A conclusion nobody awaits any more has ended: do what it asked for."""
        back: HandBack | None = None
        if task.cancelled():
            back = HandBack(self._s.redelivery_base_delay_s, "record_cancelled")
        elif (exc := task.exception()) is not None:
            log.error(
                "record_failed",
                error=type(exc).__name__,
                detail=str(exc)[:300],
                action="the message will be delivered again and its status completed",
            )
            back = HandBack(self._s.redelivery_base_delay_s, "record_failed")
        else:
            back = task.result()
        if back is not None:
            self._hand_back(held, back.delay_s, back.reason)
        self._ensure_settled(held)

    # -- settling: every held message ends here ---------------------------------------------
    def _ensure_settled(self, held: Held) -> None:
        """The invariant's backstop: a message no task works on is handed back."""
        if held.settled:
            return
        if held.conclusion is not None and not held.conclusion.done():
            return  # its conclusion is still running and will settle it
        self._metrics.unsettled += 1
        log.error("unsettled_message", phase=held.phase.value, effect="handed back")
        self._hand_back(held, self._s.redelivery_base_delay_s, "unsettled")

    def _hand_back(self, held: Held, delay_s: int, reason: str) -> None:
        """Give the message back to the queue; on the last allowed receive record
        FAILED/RETRIES_EXHAUSTED first (shielded), so the DLQ holds only final requests."""
        if held.settled:
            return
        if (
            self._last_receive(held.message)
            and held.info is not None
            and (held.conclusion is None or held.conclusion.done())
        ):
            self._start_conclusion(held, self._exhaust_or_release(held, reason), awaited=False)
            return
        self._release(held, delay_s)

    async def _exhaust_or_release(self, held: Held, reason: str) -> HandBack | None:
        back = await self._exhaust(held, reason)
        if back is not None and not held.settled:
            self._release(held, back.delay_s)  # DynamoDB down too: nothing more can be done
            log.error(
                "dead_letter_unrecorded",
                reason=back.reason,
                effect="this message may reach the dead-letter queue without a final status",
            )
        return None

    def _delete(self, held: Held) -> None:
        if held.settled:
            return
        held.settled = True
        held.phase = Phase.DONE
        self._extender.forget(held.message)
        self._acks.delete(held.message.message_id, held.message.receipt_handle)

    def _release(self, held: Held, visibility_s: int) -> None:
        if held.settled:
            return
        held.settled = True
        held.phase = Phase.DONE
        self._extender.forget(held.message)
        log.debug("released", visible_in_s=visibility_s)
        self._acks.change_visibility(
            held.message.message_id, held.message.receipt_handle, visibility_s
        )

    def _let_go(self, held: Held, reason: str) -> None:
        """Stop holding without an ack (the shutdown's hard deadline): the message returns
        after its visibility timeout."""
        held.settled = True
        held.phase = Phase.DONE
        self._extender.forget(held.message)
        log.warning("let_go", reason=reason)
