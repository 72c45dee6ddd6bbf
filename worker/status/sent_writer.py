"""Write SENT records in batches, off the send path's round trips, and never drop one.

A SENT outcome needs no condition to be safe: the provider accepted the message, so SENT is
the truth whatever the record says now (a worker whose lease lapsed and who also sent finds
its own conditional write refused and deletes its copy). So SENT records are written without
a condition, up to 25 a call, as *updates* of the attributes a send sets (``Status``,
``MessageId``, ``Attempts``, ``SentAt``, ...) in one ``TransactWriteItems``: never a whole
item, so delivery attributes a delivery event wrote first (an event may arrive before the
``SENT`` write: docs/events.md) are never erased. (``BatchWriteItem`` only puts whole items;
a transaction of unconditional updates costs twice the write units, in one round trip.)

A record is held until DynamoDB takes it (retried with capped, jittered backoff, its message
kept invisible); only :meth:`SentWriter.abandon`, at the shutdown's hard deadline, gives up,
and a record waits at most ``linger_ms`` for its batch (0: a call of its own). Both prices are
the crash window of docs/failure-semantics.md ("A SENT outcome is held, never dropped", "The
crash window"). The message is deleted only once its record is durable.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from worker.aws.errors import describe, is_unavailable
from worker.backoff import compute_backoff_s
from worker.batching import LingerBatcher
from worker.health import DYNAMODB, DependencyHealth
from worker.logs import get_logger
from worker.status.codec import encode_value
from worker.status.model import REQUEST_KEY, Claim, RecordFields, Status, now_iso

log = get_logger(__name__)

BATCH_MAX = 25
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 5.0
LOG_EVERY_ATTEMPTS = 10  # while held: a log line on the first failure and every tenth


#: What a send sets (and the claim's lease and last error it clears); nothing else is touched.
_SENT_UPDATE = (
    "SET #Status = :sent, MessageId = :mid, Attempts = :attempts, SentAt = :now, "
    "UpdatedAt = :now, SqsMessageId = :sqs_id, ReceiveCount = :rc "
    "REMOVE LeaseUntil, ErrorCode, ErrorReason, ErrorMessage, AmbiguousAt"
)


class SentAbandoned(Exception):
    """The shutdown's hard deadline came while this SENT record was still held."""


@dataclass(slots=True)
class _Pending:
    request_id: str
    item: dict[str, Any]
    done: asyncio.Future[None]


class SentWriter(LingerBatcher[_Pending]):
    def __init__(
        self,
        client: Any,
        table: str,
        linger_ms: int,
        health: DependencyHealth | None = None,
    ) -> None:
        super().__init__("sent-writer", max_batch=BATCH_MAX, linger_s=linger_ms / 1000)
        self._client = client
        self._table = table
        self._health = health or DependencyHealth()
        self._abandoned = asyncio.Event()
        self._close_grace_s = 5.0

    async def write(self, claim: Claim, info: RecordFields, message_id: str, calls: int) -> None:
        """Return once the SENT record is durable; raises ``SentAbandoned`` only if the
        shutdown's hard deadline came first."""
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
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._add(_Pending(claim.request_id, update, future))
        await future

    def abandon(self) -> None:
        """Give up on every record still held (the shutdown's hard deadline): each waiting
        ``write`` raises ``SentAbandoned``; logged with the count."""
        self._abandoned.set()

    async def close(self, grace_s: float = 5.0) -> None:
        """Write what is queued; after ``grace_s`` abandon what is still held (the worker's
        shutdown has normally waited for its records already, within its own deadline)."""
        self._close_grace_s = grace_s
        await super().close()

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self._close_grace_s):
                await self.flush()
        except TimeoutError:
            self.abandon()
        await super()._drain()

    def _take(self, queued: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        batch: list[_Pending] = []
        keys: set[str] = set()
        rest: list[_Pending] = []
        for pending in queued:
            # One item per key per call (DynamoDB's rule); a second waits for the next batch.
            if len(batch) < BATCH_MAX and pending.request_id not in keys:
                batch.append(pending)
                keys.add(pending.request_id)
            else:
                rest.append(pending)
        return batch, rest

    async def _send(self, batch: list[_Pending]) -> None:
        remaining = {p.request_id: p for p in batch}
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            items = [{"Update": p.item} for p in remaining.values()]
            try:
                await self._client.transact_write_items(TransactItems=items)
            except Exception as exc:  # the client already retried the call itself
                # All or nothing: a cancelled transaction (a conflict with a delivery event's
                # write to one of its items, throttling) is retried whole.
                self._health.count(DYNAMODB, "record_sent", describe(exc))
                if is_unavailable(exc):
                    self._health.failed(DYNAMODB, describe(exc))
                error = describe(exc)
            else:  # all or nothing: every record of the batch is written
                self._health.ok(DYNAMODB)
                for pending in remaining.values():
                    pending.done.set_result(None)
                if attempt > 1:
                    log.info(
                        "sent_write_recovered",
                        items=len(batch),
                        attempts=attempt,
                        held_ms=round((time.monotonic() - started) * 1000),
                    )
                return
            if attempt == 1 or attempt % LOG_EVERY_ATTEMPTS == 0:
                log.warning(
                    "sent_write_held",
                    items=len(remaining),
                    attempt=attempt,
                    error=error,
                    held_ms=round((time.monotonic() - started) * 1000),
                    effect="the sends were accepted; their records are retried until DynamoDB "
                    "takes them, their messages kept invisible meanwhile",
                )
            delay_s = compute_backoff_s(attempt, BACKOFF_BASE_S, BACKOFF_MAX_S)
            abandoned = asyncio.ensure_future(self._abandoned.wait())
            try:
                await asyncio.wait({abandoned}, timeout=delay_s)
            finally:
                abandoned.cancel()
            if self._abandoned.is_set():
                break
        log.error(
            "sent_write_abandoned",
            items=len(remaining),
            error=error,
            held_ms=round((time.monotonic() - started) * 1000),
            effect="the shutdown's hard deadline came first: these requests stay SENDING and "
            "are sent again once their lease passes (the documented crash window)",
        )
        for pending in remaining.values():
            if not pending.done.done():
                pending.done.set_exception(SentAbandoned(f"SENT record held, not written: {error}"))
