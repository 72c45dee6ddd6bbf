"""Batched acknowledgements: ``DeleteMessageBatch`` and ``ChangeMessageVisibilityBatch``.

An ack is queued synchronously (so it cannot be lost to the caller's cancellation) and sent
in batches of up to 10, at the latest ``flush_ms`` after the first one waited. A failed entry
is retried a few times when the failure was SQS's; otherwise it is logged and left: the message
comes back, and the status record makes the redelivery a no-op.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from worker.logs import get_logger
from worker.runtime.metrics import Metrics

log = get_logger(__name__)

BATCH_MAX = 10
ENTRY_RETRIES = 3


@dataclass(frozen=True, slots=True)
class _Ack:
    message_id: str
    receipt_handle: str
    visibility_s: int | None  # None: delete


class AckBatcher:
    def __init__(self, client: Any, queue_url: str, metrics: Metrics, flush_ms: int) -> None:
        self._client = client
        self._queue_url = queue_url
        self._metrics = metrics
        self._flush_s = flush_ms / 1000
        self._pending: dict[bool, list[_Ack]] = {True: [], False: []}  # key: is delete
        self._wakeup = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    # -- producers -------------------------------------------------------------------------
    def delete(self, message_id: str, receipt_handle: str) -> None:
        self._add(_Ack(message_id, receipt_handle, None))

    def change_visibility(self, message_id: str, receipt_handle: str, seconds: int) -> None:
        self._add(_Ack(message_id, receipt_handle, max(0, min(43_200, int(seconds)))))

    def _add(self, ack: _Ack) -> None:
        queue = self._pending[ack.visibility_s is None]
        queue.append(ack)
        if len(queue) >= BATCH_MAX:
            self._dispatch(ack.visibility_s is None)
        else:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._pending.values()) + len(self._sends)

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> AckBatcher:
        self._runner = asyncio.create_task(self._run(), name="ack-batcher")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush everything queued and wait for it; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        for is_delete in (True, False):
            while self._pending[is_delete]:
                self._dispatch(is_delete)
        while self._sends:
            await asyncio.gather(*list(self._sends), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(self._flush_s)
            for is_delete in (True, False):
                while self._pending[is_delete]:
                    self._dispatch(is_delete)

    def _dispatch(self, is_delete: bool) -> None:
        queue = self._pending[is_delete]
        batch, self._pending[is_delete] = queue[:BATCH_MAX], queue[BATCH_MAX:]
        if not batch:
            return
        task = asyncio.create_task(self._send(batch, is_delete))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, batch: list[_Ack], is_delete: bool) -> None:
        remaining = batch
        for attempt in range(1, ENTRY_RETRIES + 1):
            entries = [
                {"Id": str(i), "ReceiptHandle": a.receipt_handle}
                | ({} if is_delete else {"VisibilityTimeout": a.visibility_s})
                for i, a in enumerate(remaining)
            ]
            try:
                if is_delete:
                    response = await self._client.delete_message_batch(
                        QueueUrl=self._queue_url, Entries=entries
                    )
                else:
                    response = await self._client.change_message_visibility_batch(
                        QueueUrl=self._queue_url, Entries=entries
                    )
            except Exception as exc:  # the whole call failed (botocore already retried)
                log.warning(
                    "ack_batch_failed",
                    op="delete" if is_delete else "change_visibility",
                    entries=len(remaining),
                    attempt=attempt,
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
                if attempt == ENTRY_RETRIES:
                    return
                await asyncio.sleep(0.2 * attempt)
                continue
            ok = len(response.get("Successful") or [])
            if is_delete:
                self._metrics.deleted += ok
            else:
                self._metrics.released += ok
            retry: list[_Ack] = []
            for failure in response.get("Failed") or []:
                ack = remaining[int(failure["Id"])]
                if not failure.get("SenderFault") and attempt < ENTRY_RETRIES:
                    retry.append(ack)
                    continue
                log.warning(
                    "ack_failed",
                    op="delete" if is_delete else "change_visibility",
                    sqs_message_id=ack.message_id,
                    error_code=failure.get("Code"),
                    detail=str(failure.get("Message", ""))[:200],
                    effect="the message will be delivered again; its record makes that a no-op"
                    if is_delete
                    else "the message keeps its current visibility",
                )
            if not retry:
                return
            remaining = retry
            await asyncio.sleep(0.2 * attempt)
