"""Write SENT records off the send path, each as soon as its send is accepted, and never drop
one.

A SENT outcome needs no condition to be safe: the provider accepted the message, so SENT is
the truth whatever the record says now (a worker whose lease lapsed and who also sent finds
its own conditional write refused and deletes its copy). So a SENT record is one
unconditional ``UpdateItem`` of the attributes a send sets (``Status``, ``MessageId``,
``Attempts``, ``SentAt``, ...), never a whole item, so delivery attributes a delivery event
wrote first (an event may arrive before the ``SENT`` write: docs/events.md) are never erased.
(``BatchWriteItem`` only puts whole items, and a ``TransactWriteItems`` of updates costs two
write units per record and is refused whole by one conflict; one update each costs one unit,
and the calls go out concurrently on the kept-alive connections.)

A record is held until DynamoDB takes it (retried with capped, jittered backoff, its message
kept invisible), in a task of its own so the caller's cancellation cannot lose it; only
:meth:`SentWriter.abandon`, at the shutdown's hard deadline, gives up. That is the crash
window of docs/failure-semantics.md ("A SENT outcome is held, never dropped", "The crash
window"). The message is deleted only once its record is durable.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from worker.aws.errors import describe, is_unavailable
from worker.backoff import compute_backoff_s
from worker.health import DYNAMODB, DependencyHealth
from worker.lifecycle import BackgroundService
from worker.logs import get_logger
from worker.status.codec import encode_value
from worker.status.model import REQUEST_KEY, Claim, RecordFields, Status, now_iso

log = get_logger(__name__)

BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 5.0
LOG_HELD_EVERY_S = 5.0  # while records are held: one line for all of them, at most this often


#: What a send sets (and the claim's lease and last error it clears); nothing else is touched.
_SENT_UPDATE = (
    "SET #Status = :sent, MessageId = :mid, Attempts = :attempts, SentAt = :now, "
    "UpdatedAt = :now, SqsMessageId = :sqs_id, ReceiveCount = :rc "
    "REMOVE LeaseUntil, ErrorCode, ErrorReason, ErrorMessage, AmbiguousAt"
)


class SentAbandoned(Exception):
    """The shutdown's hard deadline came while this SENT record was still held."""


class SentWriter(BackgroundService):
    def __init__(self, client: Any, table: str, health: DependencyHealth | None = None) -> None:
        super().__init__("sent-writer")
        self._client = client
        self._table = table
        self._health = health or DependencyHealth()
        self._abandoned = asyncio.Event()
        self._close_grace_s = 5.0
        self._error = "none"  # the last write's error, for the abandon's log and exception
        self._logged_held_at = -LOG_HELD_EVERY_S

    async def write(self, claim: Claim, info: RecordFields, message_id: str, calls: int) -> None:
        """Return once the SENT record is durable; raises ``SentAbandoned`` only if the
        shutdown's hard deadline came first."""
        if self._abandoned.is_set():
            raise SentAbandoned("SENT record not written: the shutdown's hard deadline passed")
        now = now_iso()
        values = {
            ":sent": Status.SENT,
            ":mid": message_id,
            ":attempts": claim.attempts_after(calls),
            ":now": now,
            ":sqs_id": info.sqs_message_id,
            ":rc": info.receive_count,
        }
        update = {
            "TableName": self._table,
            "Key": {REQUEST_KEY: encode_value(claim.request_id)},
            "UpdateExpression": _SENT_UPDATE,
            "ExpressionAttributeNames": {"#Status": "Status"},
            "ExpressionAttributeValues": {k: encode_value(v) for k, v in values.items()},
        }
        # A task of its own: cancelling the caller leaves the write going (shielded).
        task = self.spawn(self._hold(update), name="sent-write")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            caller_cancelled = current is not None and current.cancelling() > 0
            if task.cancelled() and self._abandoned.is_set() and not caller_cancelled:
                raise SentAbandoned(f"SENT record held, not written: {self._error}") from None
            raise  # the caller's own cancellation: the write goes on (shielded)

    def abandon(self) -> None:
        """Give up on every record still held (the shutdown's hard deadline), a call in flight
        included: each waiting ``write`` raises ``SentAbandoned``; logged with the count."""
        if self._abandoned.is_set():
            return
        self._abandoned.set()
        held = self.in_flight
        if held:
            log.error(
                "sent_write_abandoned",
                records=held,
                error=self._error,
                effect="the shutdown's hard deadline came first: these requests stay SENDING "
                "and are sent again once their lease passes (the documented crash window)",
            )
        for task in list(self._spawned):
            task.cancel()

    async def close(self, grace_s: float = 5.0) -> None:
        """Wait for the records in flight; after ``grace_s`` abandon what is still held (the
        worker's shutdown has normally waited for its records already, within its own
        deadline)."""
        self._close_grace_s = grace_s
        await super().close()

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self._close_grace_s):
                await self.wait_spawned()
        except TimeoutError:
            self.abandon()
        await super()._drain()

    async def _hold(self, update: dict[str, Any]) -> None:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._client.update_item(**update)
            except Exception as exc:  # the client already retried the call itself
                error = self._error = describe(exc)
                self._health.count(DYNAMODB, "record_sent", error)
                if is_unavailable(exc):
                    self._health.failed(DYNAMODB, error)
            else:
                self._health.ok(DYNAMODB)
                if attempt > 1:
                    log.info(
                        "sent_write_recovered",
                        attempts=attempt,
                        held_ms=round((time.monotonic() - started) * 1000),
                        still_in_flight=self.in_flight - 1,
                    )
                return
            self._log_held(attempt, error, started)
            await asyncio.sleep(compute_backoff_s(attempt, BACKOFF_BASE_S, BACKOFF_MAX_S))

    def _log_held(self, attempt: int, error: str, started: float) -> None:
        """One line for all the records in flight, at most every ``LOG_HELD_EVERY_S``."""
        now = time.monotonic()
        if now - self._logged_held_at < LOG_HELD_EVERY_S:
            return
        self._logged_held_at = now
        log.warning(
            "sent_write_held",
            in_flight=self.in_flight,
            attempt=attempt,
            error=error,
            held_ms=round((now - started) * 1000),
            effect="the sends were accepted; their records are retried until DynamoDB "
            "takes them, their messages kept invisible meanwhile",
        )
