"""Batched acknowledgements: ``DeleteMessageBatch`` and ``ChangeMessageVisibilityBatch``.

An ack is queued synchronously (so it cannot be lost to the caller's cancellation) and sent
in batches of up to 10, at the latest ``flush_ms`` after the first one waited. A call SQS did
not answer, or an entry that failed through SQS's fault, is retried with backoff for up to
``retry_budget_s`` (SQS having a bad minute costs a delay, not a redelivery); an entry refused
for the sender's fault (an expired receipt handle) is logged and left: the message comes back,
and the status record makes the redelivery a no-op.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from worker.aws.errors import describe, is_unavailable
from worker.backoff import compute_backoff_s
from worker.health import SQS, DependencyHealth
from worker.logs import get_logger
from worker.metrics import Metrics

log = get_logger(__name__)

BATCH_MAX = 10
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 5.0


@dataclass(frozen=True, slots=True)
class _Ack:
    message_id: str
    receipt_handle: str
    visibility_s: int | None  # None: delete


class AckBatcher:
    def __init__(
        self,
        client: Any,
        queue_url: str,
        metrics: Metrics,
        flush_ms: int,
        *,
        health: DependencyHealth | None = None,
        retry_budget_s: float = 30.0,
    ) -> None:
        self._client = client
        self._health = health or DependencyHealth()
        self._retry_budget_s = retry_budget_s
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
        op = "delete" if is_delete else "change_visibility"
        remaining = batch
        deadline = asyncio.get_running_loop().time() + self._retry_budget_s
        attempt = 0
        while remaining:
            attempt += 1
            last = asyncio.get_running_loop().time() >= deadline
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
            except Exception as exc:  # the whole call failed (the client already retried)
                if is_unavailable(exc):
                    self._health.failed(SQS, describe(exc))
                if attempt == 1 or last:
                    log.warning(
                        "ack_batch_failed",
                        op=op,
                        entries=len(remaining),
                        attempt=attempt,
                        error=describe(exc),
                        detail=str(exc)[:200],
                        effect="given up: the messages come back and are skipped as duplicates"
                        if last
                        else "retried with backoff",
                    )
                if last or not is_unavailable(exc):
                    return
                await asyncio.sleep(compute_backoff_s(attempt, BACKOFF_BASE_S, BACKOFF_MAX_S))
                continue
            self._health.ok(SQS)
            ok = len(response.get("Successful") or [])
            if is_delete:
                self._metrics.deleted += ok
            else:
                self._metrics.released += ok
            retry: list[_Ack] = []
            for failure in response.get("Failed") or []:
                ack = remaining[int(failure["Id"])]
                if not failure.get("SenderFault") and not last:
                    retry.append(ack)
                    continue
                log.warning(
                    "ack_failed",
                    op=op,
                    sqs_message_id=ack.message_id,
                    error_code=failure.get("Code"),
                    detail=str(failure.get("Message", ""))[:200],
                    effect="the message will be delivered again; its record makes that a no-op"
                    if is_delete
                    else "the message keeps its current visibility",
                )
            remaining = retry
            if remaining:
                await asyncio.sleep(compute_backoff_s(attempt, BACKOFF_BASE_S, BACKOFF_MAX_S))
