"""One message's way through the worker: parse -> (expire) -> rate -> claim -> send -> record.

The outcome decides the acknowledgement: delete, release (visibility 0 or a delay), or leave.
Each step logs one event with fixed keys; the request's identifiers are bound once through
``structlog.contextvars``. The final status write and its acknowledgement run shielded from
cancellation, so a shutdown never turns an accepted send into a resend.
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

from worker.logs import get_logger
from worker.model import InvalidRequest, mask_identity, parse_request
from worker.ops.counters import CampaignCounters
from worker.queue.acks import AckBatcher
from worker.queue.extender import VisibilityExtender
from worker.queue.message import QueueMessage
from worker.runtime.cooldown import Cooldown
from worker.runtime.metrics import Metrics
from worker.sending.errors import ErrorKind, SendError
from worker.sending.ratelimit import RateLimiter
from worker.sending.sender import Sender, SendProgress, SendResult
from worker.settings import Settings
from worker.status.sent_writer import SentWriter
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


class Phase(enum.Enum):
    WAITING = "waiting"  # received, not claimed: safe to hand back at once
    SENDING = "sending"  # claimed: let it finish within the grace period
    CONCLUDING = "concluding"  # writing its outcome, shielded from cancellation
    DONE = "done"


@dataclass(slots=True)
class Held:
    """A message this worker holds, and how far it got."""

    message: QueueMessage
    phase: Phase = Phase.WAITING
    progress: SendProgress = field(default_factory=SendProgress)


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
        self._stopping = stopping
        self.max_receive_count = max_receive_count
        # Shielded conclusions still running after their task was cancelled.
        self.concluding: set[asyncio.Task[None]] = set()

    async def handle(self, held: Held) -> None:
        msg = held.message
        structlog.contextvars.bind_contextvars(
            sqs_message_id=msg.message_id, receive_count=msg.receive_count
        )
        claim: Claim | None = None
        info: RequestInfo | None = None
        try:
            log.debug("received")
            parsed = parse_request(msg.body, sqs_message_id=msg.message_id)
            if isinstance(parsed, InvalidRequest):
                info = RequestInfo(
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
                await self._shielded(held, self._record_without_call(held, info, outcome))
                return
            request = parsed.request
            identity = request.OriginationIdentity
            info = RequestInfo(
                parsed.request_id,
                msg.message_id,
                msg.receive_count,
                request.CampaignId,
                request.DestinationPhoneNumber,
                identity,
                bool(request.DryRun),
            )
            structlog.contextvars.bind_contextvars(
                request_id=info.request_id, identity=mask_identity(identity)
            )
            not_after = request.not_after
            if not_after is not None and datetime.now(UTC) > not_after:
                outcome = Outcome(
                    EXPIRED,
                    error_message=f"NotAfter {not_after.isoformat()} passed before "
                    "the request could be sent",
                )
                await self._shielded(held, self._record_without_call(held, info, outcome))
                return
            if self._cooldown.active:
                self._release(held, math.ceil(self._cooldown.remaining_s))
                return
            bucket = self._limiter.bucket(identity)
            wait_s = bucket.next_wait_s()
            if wait_s > self._s.max_token_wait_s and msg.receive_count < (
                self.max_receive_count - 1
            ):
                # This identity is booked further ahead than a message should be held: hand
                # it back for when its turn comes, so it holds no slot a faster identity needs.
                self._metrics.deferred += 1
                delay_s = math.ceil(wait_s * (1 + random.random() / 2))
                log.info("deferred", wait_s=round(wait_s, 1), visible_in_s=delay_s)
                self._release(held, delay_s)
                return
            await bucket.acquire()
            if self._stopping.is_set() or self._cooldown.active:
                self._release(held, math.ceil(self._cooldown.remaining_s))
                return
            # From the claim on, a shutdown lets this request finish (within the grace
            # period) instead of handing it back: a claim cut short would leave a live lease.
            held.phase = Phase.SENDING
            claimed = await self._store.claim(info)
            if isinstance(claimed, Existing):
                self._not_ours(held, claimed)
                return
            claim = claimed
            log.info("claimed", attempt=claim.attempts)
            result = await self._sender.send(
                request.api_params(), identity, first_token_held=True, progress=held.progress
            )
            await self._shielded(held, self._conclude(held, claim, info, result))
        except asyncio.CancelledError:
            self._on_cancel(held, claim, info)
            raise
        except Exception as exc:
            # A dependency failed (DynamoDB unreachable, say). Leave the message: SQS
            # delivers it again after its visibility timeout; nothing is lost.
            log.error(
                "processing_error",
                error=type(exc).__name__,
                detail=str(exc)[:300],
                action="the message will be delivered again; check DynamoDB/SQS reachability",
            )
        finally:
            held.phase = Phase.DONE

    # -- outcomes --------------------------------------------------------------------------
    async def _record_without_call(self, held: Held, info: RequestInfo, outcome: Outcome) -> None:
        existing = await self._store.record_without_call(info, outcome)
        if existing is not None:
            self._not_ours(held, existing)
            return
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

    async def _conclude(
        self, held: Held, claim: Claim, info: RequestInfo, result: SendResult
    ) -> None:
        attempt = claim.attempts + max(0, result.calls - 1)
        if result.message_id is not None:
            # Durable before the delete: an acknowledged request always has its status.
            await self._sent_writer.write(claim, info, result.message_id, result.calls)
            self._count(info, SENT, None)
            self._metrics.sent += 1
            log.info(
                "sent",
                attempt=attempt,
                latency_ms=round(result.latency_ms, 1),
                dry_run=info.dry_run or None,
            )
            self._delete(held)
            return
        assert result.error is not None
        outcome = self._failure_outcome(held.message, result.error)
        lost = await self._store.finish(claim, info, outcome, result.calls)
        if lost is not None:
            log.warning(
                "lease_lost",
                status=outcome.status,
                now_status=lost.status,
                attempt=attempt,
                action="raise lease_s above the longest send (retry budget + timeouts)",
            )
        if lost is not None:
            return  # someone else owns the request now; leave the message as it is
        if outcome.status == FAILED:
            self._count(info, FAILED, outcome.error_code)
        error = result.error
        assert error is not None
        fields = {
            "attempt": attempt,
            "error_code": outcome.error_code,
            "error_reason": outcome.error_reason,
        }
        if outcome.status == RETRYING:
            delay_s = self._redelivery_delay_s(held.message.receive_count, error)
            self._metrics.retrying[error.code] += 1
            log.info("retrying", **fields, visible_in_s=delay_s)
            self._release(held, delay_s)
        elif outcome.error_code == RETRIES_EXHAUSTED:
            self._metrics.failed[RETRIES_EXHAUSTED] += 1
            log.warning("failed", **fields, max_receive_count=self.max_receive_count)
            self._release(held, 0)  # the next receive moves it to the dead-letter queue
        else:
            self._metrics.failed[error.code] += 1
            log.info("failed", **fields, error_message=error.message)
            self._delete(held)

    def _count(self, info: RequestInfo, status: str, error_code: str | None) -> None:
        """Count a final status just written, for its campaign's progress counters."""
        if self._counters is not None and info.campaign_id is not None:
            self._counters.record(info.campaign_id, status, error_code)

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
        if message.receive_count >= self.max_receive_count:
            return Outcome(
                FAILED,
                error_code=RETRIES_EXHAUSTED,
                error_reason=error.code,
                error_message=f"still failing on receive {message.receive_count} of "
                f"{self.max_receive_count}; last error {error.code}: {error.message}"[:1000],
            )
        return Outcome(
            RETRYING, error_code=error.code, error_reason=error.reason, error_message=error.message
        )

    def _redelivery_delay_s(self, receive_count: int, error: SendError) -> int:
        s = self._s
        delay = s.redelivery_base_delay_s * 2 ** max(0, receive_count - 1)
        delay = min(delay, s.redelivery_max_delay_s)
        if error.kind is ErrorKind.ACCOUNT:
            delay = max(delay, math.ceil(self._cooldown.remaining_s))
        return int(delay)

    def _not_ours(self, held: Held, existing: Existing) -> None:
        """Another delivery got there first: a duplicate, or a live claim elsewhere."""
        if existing.is_final:
            self._metrics.duplicates += 1
            log.info("duplicate_skipped", status=existing.status)
            self._delete(held)
            return
        wait_s = max(1, math.ceil((existing.lease_until_ms - time.time() * 1000) / 1000) + 1)
        self._metrics.lease_busy += 1
        log.info("lease_busy", status=existing.status, visible_in_s=wait_s)
        self._release(held, wait_s)

    # -- cancellation and acks -------------------------------------------------------------
    def _on_cancel(self, held: Held, claim: Claim | None, info: RequestInfo | None) -> None:
        if held.phase is Phase.WAITING:
            self._release(held, 0)
            return
        if held.phase is Phase.SENDING and claim is not None and info is not None:
            progress = held.progress
            if progress.in_call:
                # The provider may have accepted it: keep the claim (its lease stops other
                # workers) and the message (it returns after its visibility timeout).
                log.warning("abandoned_in_call", attempt=claim.attempts + progress.calls - 1)
                return
            error = progress.last_error or SendError(
                ErrorKind.TRANSIENT, "SHUTDOWN", None, "worker stopped between retries"
            )
            result = SendResult(None, error, progress.calls, 0.0)
            self._start_shielded(self._conclude(held, claim, info, result))

    async def _shielded(self, held: Held, coro: Coroutine[Any, Any, None]) -> None:
        held.phase = Phase.CONCLUDING
        task = self._start_shielded(coro)
        await asyncio.shield(task)

    def _start_shielded(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self.concluding.add(task)
        task.add_done_callback(self._concluded)
        return task

    def _concluded(self, task: asyncio.Task[None]) -> None:
        self.concluding.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error(
                "record_failed",
                error=type(exc).__name__,
                detail=str(exc)[:300],
                action="the message will be delivered again and its status completed",
            )

    def _delete(self, held: Held) -> None:
        held.phase = Phase.DONE
        self._extender.forget(held.message)
        self._acks.delete(held.message.message_id, held.message.receipt_handle)

    def _release(self, held: Held, visibility_s: int) -> None:
        held.phase = Phase.DONE
        self._extender.forget(held.message)
        log.debug("released", visible_in_s=visibility_s)
        self._acks.change_visibility(
            held.message.message_id, held.message.receipt_handle, visibility_s
        )
