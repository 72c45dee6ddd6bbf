"""Queue depth, dead-letter depth and the age of the oldest message, sampled in the background.

Every ``QUEUE_SAMPLE_INTERVAL_S`` (and once at start-up) one ``GetQueueAttributes`` on the
queue and one on its dead-letter queue (its URL from the queue's ``RedrivePolicy``) read the
approximate depths; nothing is done per message. SQS does not give the age of the oldest
message through its API (CloudWatch's ``ApproximateAgeOfOldestMessage`` does, and the
CloudFormation alarms use it), so the worker samples what it can see: the age, from the
``SentTimestamp`` that ReceiveMessage returns, of the oldest message it holds at the sample
(0 when it holds none). Under a backlog the worker holds ``max_in_flight`` messages from the
head of the queue, so that is close to the queue's own figure; the depth gauges cover a
worker that receives nothing.

A failed sample is counted in ``sms_worker_dependency_failures_total`` (operation
``get_queue_attributes``) and keeps the previous figures; it does not make SQS "failing" for
``/readyz`` (the receives say that).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from worker.aws.errors import describe
from worker.health import SQS, DependencyHealth
from worker.lifecycle import BackgroundService
from worker.logs import get_logger
from worker.queue.message import QueueMessage

log = get_logger(__name__)

QUEUE_SAMPLE_INTERVAL_S = 15.0
#: What the consumer asks each ReceiveMessage for, only while the sampler runs.
SAMPLED_ATTRIBUTES = ("SentTimestamp",)
#: GetQueueAttributes name -> the ``state`` label of ``sms_worker_queue_messages``
DEPTH_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "not_visible",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}
MAIN, DLQ = "main", "dlq"


class QueueSampler(BackgroundService):
    """Reads the figures; the metrics collector reads ``depth``, ``oldest_age_s`` and
    ``sampled_at`` at scrape time."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        health: DependencyHealth,
        held: Callable[[], Iterable[QueueMessage]],
        *,
        interval_s: float = QUEUE_SAMPLE_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__("queue-sampler")
        self._sqs = sqs
        self._queue_url = queue_url
        self._health = health
        self._held = held
        self._clock = clock
        self._dlq_url: str | None = None
        self.depth: dict[tuple[str, str], int] = {}  # (queue, state) -> messages
        self.oldest_age_s = 0.0
        self.sampled_at: float | None = None  # epoch seconds of the last full sample
        self._loop = self.every(interval_s, self.sample, name="queue-sample")

    def start(self) -> None:
        first = not self.running
        super().start()
        if first:
            self.spawn(self._loop.call(), name="queue-sample-first")

    async def _drain(self) -> None:
        for task in list(self._spawned):  # a sample in flight is not worth waiting for
            task.cancel()
        await self.wait_spawned()

    async def sample(self) -> None:
        self.oldest_age_s = oldest_age_s(self._held(), self._clock())
        attributes = await self._attributes(self._queue_url, [*DEPTH_ATTRIBUTES, "RedrivePolicy"])
        self._keep(MAIN, attributes)
        if self._dlq_url is None:
            self._dlq_url = self._dead_letter_url(attributes.get("RedrivePolicy"))
        if self._dlq_url is not None:
            self._keep(DLQ, await self._attributes(self._dlq_url, list(DEPTH_ATTRIBUTES)))
        self.sampled_at = self._clock()

    def _keep(self, queue: str, attributes: dict[str, str]) -> None:
        for name, state in DEPTH_ATTRIBUTES.items():
            if name in attributes:
                self.depth[(queue, state)] = int(attributes[name])

    async def _attributes(self, url: str, names: list[str]) -> dict[str, str]:
        try:
            response = await self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        except Exception as exc:
            self._health.count(SQS, "get_queue_attributes", describe(exc))
            raise
        return dict(response.get("Attributes") or {})

    def _dead_letter_url(self, policy: str | None) -> str | None:
        """The dead-letter queue's URL from the redrive policy's ARN (None without one): the
        queue's own URL with the ARN's account and name, so no GetQueueUrl is needed."""
        if not policy:
            return None
        arn = str(json.loads(policy).get("deadLetterTargetArn") or "")
        parts = arn.split(":")
        if len(parts) != 6:
            log.warning("dead_letter_queue_unknown", redrive_policy=policy[:200])
            return None
        url = urlsplit(self._queue_url)
        return f"{url.scheme}://{url.netloc}/{parts[4]}/{parts[5]}"


def oldest_age_s(messages: Iterable[QueueMessage], now_s: float) -> float:
    """Seconds since the oldest of ``messages`` was sent to the queue (0 for none)."""
    sent = [int(m.sent_timestamp) for m in messages if m.sent_timestamp]
    return max(0.0, now_s - min(sent) / 1000) if sent else 0.0
