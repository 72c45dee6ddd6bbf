"""Write SENT records in batches, off the send path's round trips.

A SENT outcome needs no condition to be safe: the provider accepted the message, so SENT is
the truth whatever the record says now (a worker whose lease lapsed and who also sent finds
its own conditional write refused and deletes its copy). So SENT records are written as whole
items (the claim's record plus the outcome) with ``BatchWriteItem``, up to 25 a call: one
DynamoDB call for many sends instead of one each. Every other outcome keeps its conditional
``UpdateItem``.

The price is the crash window: a SENT record waits at most ``linger_ms`` for its batch, so a
worker killed in that time resends those requests. ``linger_ms = 0`` writes each record at
once (a batch still forms while a call is in flight). The message is deleted only once its
record is durable, so an acknowledged request always has its final status.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from worker.logs import get_logger
from worker.status.codec import encode_value
from worker.status.store import SENT, Claim, RequestInfo, now_iso

log = get_logger(__name__)

BATCH_MAX = 25
ATTEMPTS = 5


@dataclass(slots=True)
class _Pending:
    request_id: str
    item: dict[str, Any]
    done: asyncio.Future[None]


class SentWriter:
    def __init__(self, client: Any, table: str, linger_ms: int) -> None:
        self._client = client
        self._table = table
        self._linger_s = linger_ms / 1000
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    async def write(self, claim: Claim, info: RequestInfo, message_id: str, calls: int) -> None:
        """Return once the SENT record is durable; raises if it could not be written."""
        now = now_iso()
        item = dict(claim.record)
        for attr in ("LeaseUntil", "ErrorCode", "ErrorReason", "ErrorMessage"):
            item.pop(attr, None)
        item |= {
            "RequestId": encode_value(claim.request_id),
            "Status": encode_value(SENT),
            "MessageId": encode_value(message_id),
            "Attempts": encode_value(claim.attempts + max(0, calls - 1)),
            "SentAt": encode_value(now),
            "UpdatedAt": encode_value(now),
            "SqsMessageId": encode_value(info.sqs_message_id),
            "ReceiveCount": encode_value(info.receive_count),
        }
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(claim.request_id, item, future))
        if len(self._pending) >= BATCH_MAX or self._linger_s == 0:
            self._dispatch()
        else:
            self._wakeup.set()
        await future

    async def __aenter__(self) -> SentWriter:
        self._runner = asyncio.create_task(self._run(), name="sent-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        while self._pending:
            self._dispatch()
        while self._batches:
            await asyncio.gather(*list(self._batches), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(self._linger_s)
            while self._pending:
                self._dispatch()

    def _dispatch(self) -> None:
        batch: list[_Pending] = []
        keys: set[str] = set()
        rest: list[_Pending] = []
        for pending in self._pending:
            # One item per key per call (DynamoDB's rule); a second waits for the next batch.
            if len(batch) < BATCH_MAX and pending.request_id not in keys:
                batch.append(pending)
                keys.add(pending.request_id)
            else:
                rest.append(pending)
        self._pending = rest
        if batch:
            task = asyncio.create_task(self._write(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _write(self, batch: list[_Pending]) -> None:
        remaining = {p.request_id: p for p in batch}
        started = time.monotonic()
        error: BaseException | None = None
        for attempt in range(1, ATTEMPTS + 1):
            requests = [{"PutRequest": {"Item": p.item}} for p in remaining.values()]
            try:
                response = await self._client.batch_write_item(RequestItems={self._table: requests})
            except Exception as exc:  # botocore already retried the call itself
                error = exc
            else:
                unprocessed = response.get("UnprocessedItems", {}).get(self._table, [])
                left = {r["PutRequest"]["Item"]["RequestId"]["S"] for r in unprocessed}
                for request_id in list(remaining):
                    if request_id not in left:
                        remaining.pop(request_id).done.set_result(None)
                if not remaining:
                    return
                error = RuntimeError(f"{len(remaining)} items left unprocessed")
            await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
        log.error(
            "sent_write_failed",
            items=len(remaining),
            error=repr(error),
            waited_ms=round((time.monotonic() - started) * 1000),
            effect="their messages are left; after the lease they are claimed and sent again",
        )
        for pending in remaining.values():
            if not pending.done.done():
                pending.done.set_exception(RuntimeError(f"SENT record not written: {error!r}"))
