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
from worker.batching import LingerBatcher
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


class AckBatcher(LingerBatcher[_Ack]):
    """Deletes and visibility changes, each in batches of their own (two lanes)."""

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
        super().__init__("ack-batcher", max_batch=BATCH_MAX, linger_s=flush_ms / 1000)
        self._client = client
        self._health = health or DependencyHealth()
        self._retry_budget_s = retry_budget_s
        self._queue_url = queue_url
        self._metrics = metrics

    # -- producers -------------------------------------------------------------------------
    def delete(self, message_id: str, receipt_handle: str) -> None:
        self._add(_Ack(message_id, receipt_handle, None))

    def change_visibility(self, message_id: str, receipt_handle: str, seconds: int) -> None:
        self._add(_Ack(message_id, receipt_handle, max(0, min(43_200, int(seconds)))))

    def _lane(self, item: _Ack) -> bool:
        return item.visibility_s is None  # is a delete

    async def _send(self, batch: list[_Ack]) -> None:
        is_delete = batch[0].visibility_s is None
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
                self._health.count(SQS, op, describe(exc))
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
            self._metrics.ack_calls += 1
            ok = len(response.get("Successful") or [])
            if is_delete:
                self._metrics.deleted += ok
            else:
                self._metrics.released += ok
            retry: list[_Ack] = []
            for failure in response.get("Failed") or []:
                ack = remaining[int(failure["Id"])]
                self._health.count(SQS, op, str(failure.get("Code") or "unknown"))
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
