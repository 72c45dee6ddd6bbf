"""Publishing the sandbox's delivery events to SQS, as the service's event destination does.

:class:`EventPublisher` takes the events :func:`worker.sandbox.event_plan.plan_events` plans
for each accepted send, holds them until they are due (``events_delay_ms`` ±
``events_jitter_ms`` after the send, spread over the message's events), wraps each in the
configured envelope and sends them with ``SendMessageBatch`` from a task of its own, so a send
never waits for SQS. Its queue is bounded (beyond ``max_pending`` events are dropped and
counted); publishing errors are counted and logged, never raised; closing it publishes what
is still waiting, delay or not.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import random
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from worker.aws.clients import aws_client
from worker.lifecycle import BackgroundService
from worker.sandbox.event_plan import (
    draw_outcome,
    envelope,
    event_prefix,
    plan_events,
    queue_account,
    queue_region,
)

if TYPE_CHECKING:
    from worker.sandbox.config import SandboxConfig
    from worker.sandbox.state import SendRecord

log = structlog.get_logger("worker.sandbox")

SQS_MAX_BATCH = 10
MAX_PENDING = 100_000
MAX_BATCHES_IN_FLIGHT = 4
DRAIN_TIMEOUT_S = 10.0


@dataclass(order=True, slots=True)
class _Due:
    due: float  # the clock's time at which to publish
    seq: int
    queue_url: str = field(compare=False)
    event: dict[str, Any] = field(compare=False)
    kind: str = field(compare=False)  # the envelope


@dataclass(slots=True)
class EventStats:
    """What the publisher did since start (or the last reset)."""

    planned: int = 0  # events planned (duplicates included)
    published: int = 0
    duplicated: int = 0
    failed: int = 0  # SQS refused the entry, or the call failed
    dropped: int = 0  # the queue was full (max_pending)
    batches: int = 0
    by_type: dict[str, int] = field(default_factory=dict)  # published, by eventType

    def to_json(self, pending: int) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "published": self.published,
            "duplicated": self.duplicated,
            "failed": self.failed,
            "dropped": self.dropped,
            "batches": self.batches,
            "pending": pending,
            "by_type": dict(self.by_type),
        }


class EventPublisher(BackgroundService):
    """Plans the events of accepted sends and publishes them when due (module docstring)."""

    def __init__(
        self,
        seed: int | None = None,
        *,
        max_pending: int = MAX_PENDING,
        clock: Any = time.monotonic,
        wall: Any = time.time,
    ) -> None:
        super().__init__("sandbox-events")
        self.max_pending = max_pending
        self._clock = clock
        self._wall = wall
        self._rng = random.Random(seed)
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._closing = False
        self._batches = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._clients = AsyncExitStack()
        self._sqs: Any = None
        self._client_lock = asyncio.Lock()
        self._runner: asyncio.Task[None] | None = None
        self._in_flight_events = 0
        self.stats = EventStats()

    def reseed(self, seed: int | None) -> None:
        self._rng.seed(seed)

    def reset_stats(self) -> None:
        self.stats = EventStats()

    @property
    def pending(self) -> int:
        """Events waiting to be published or in a batch in flight."""
        return len(self._heap) + self._in_flight_events

    def stats_json(self) -> dict[str, Any]:
        return self.stats.to_json(self.pending)

    # -- planning (synchronous: called on the send path) ---------------------------------------
    def publish(self, record: SendRecord, operation: str, config: SandboxConfig) -> None:
        """Plan the events of one accepted send for publishing, if events are on."""
        queue_url = config.events_queue_url
        prefix = event_prefix(operation)
        if queue_url is None or prefix is None or record.dry_run:
            return
        rng = self._rng
        outcome = draw_outcome(config.events_outcomes, prefix, rng)
        events = plan_events(record, operation, outcome, rng.choice(("QUEUED", "PENDING")))
        # Offsets after the send, in natural order, the last one events_delay_ms ± jitter.
        count = len(events)
        offsets_ms = sorted(
            max(0.0, config.events_delay_ms * (i + 1) / count + _jitter(rng, config))
            for i in range(count)
        )
        request_ms = events[0]["messageRequestTimestamp"]
        for i, (event, offset_ms) in enumerate(zip(events, offsets_ms, strict=True)):
            event["eventTimestamp"] = request_ms + int(offset_ms) + i
        publish_order = list(events)
        if config.events_reorder:
            rng.shuffle(publish_order)
        now = self._clock()
        planned: list[tuple[float, dict[str, Any]]] = []
        for event, offset_ms in zip(publish_order, offsets_ms, strict=True):
            planned.append((now + offset_ms / 1000.0, event))
            if config.events_duplicate_rate > 0 and rng.random() < config.events_duplicate_rate:
                again_ms = offset_ms + rng.uniform(0.0, max(config.events_delay_ms, 1.0))
                planned.append((now + again_ms / 1000.0, event))
                self.stats.duplicated += 1
        for due, event in planned:
            self._push(_Due(due, next(self._seq), queue_url, event, config.events_envelope))

    def _push(self, item: _Due) -> None:
        if self._closing or len(self._heap) >= self.max_pending:
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                log.warning(
                    "sandbox_events_dropped",
                    dropped=self.stats.dropped,
                    max_pending=self.max_pending,
                    closing=self._closing,
                    hint="the events queue is not keeping up; lower the send rate",
                )
            return
        self.stats.planned += 1
        heapq.heappush(self._heap, item)
        if self._runner is None or self._runner.done():
            self.start()
            self._runner = self.spawn(self._run(), name="sandbox-events-runner")
        self._wake.set()

    # -- publishing (the background task) -----------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            due: list[_Due] = []
            while self._heap and (self._closing or self._heap[0].due <= now):
                due.append(heapq.heappop(self._heap))
            if due:
                await self._dispatch(due)
                continue
            if self._closing:
                return
            timeout = self._heap[0].due - now if self._heap else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _dispatch(self, due: list[_Due]) -> None:
        """Publish one round of due events: per queue, one task sends its batches in due order,
        so the events of one message (planned together) are never split across batches racing
        each other; rounds overlap, up to ``MAX_BATCHES_IN_FLIGHT``."""
        by_queue: dict[str, list[_Due]] = {}
        for item in due:
            by_queue.setdefault(item.queue_url, []).append(item)
        for queue_url, items in by_queue.items():
            await self._batches.acquire()  # bounds the rounds in flight
            self._in_flight_events += len(items)
            task = self.spawn(self._send_in_order(queue_url, items))
            # However the task ends (cancelled before it ran, at the drain's deadline,
            # included): its slot comes back and its events stop counting as in flight.
            task.add_done_callback(functools.partial(self._round_done, len(items)))

    def _round_done(self, events: int, _task: asyncio.Task[None]) -> None:
        self._in_flight_events -= events
        self._batches.release()

    async def _send_in_order(self, queue_url: str, items: list[_Due]) -> None:
        for start in range(0, len(items), SQS_MAX_BATCH):
            await self._send(queue_url, items[start : start + SQS_MAX_BATCH])

    async def _client(self, queue_url: str) -> Any:
        async with self._client_lock:  # one client, however many rounds start at once
            if self._sqs is None:
                self._sqs = await self._clients.enter_async_context(
                    aws_client(
                        "sqs",
                        region=queue_region(queue_url),
                        retries={"mode": "standard", "total_max_attempts": 3},
                        connect_timeout=5,
                        read_timeout=20,
                    )
                )
        return self._sqs

    async def _send(self, queue_url: str, items: list[_Due]) -> None:
        region, account = queue_region(queue_url), queue_account(queue_url)
        now = self._wall()
        entries = [
            {
                "Id": str(i),
                "MessageBody": envelope(
                    item.event, item.kind, region=region, account=account, now=now
                ),
            }
            for i, item in enumerate(items)
        ]
        try:
            sqs = await self._client(queue_url)
            answer = await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:
            self.stats.failed += len(items)
            log.error(
                "sandbox_events_publish_failed",
                queue_url=queue_url,
                events=len(items),
                error=f"{type(exc).__name__}: {exc}",
                hint="check events_queue_url, and the SQS endpoint and credentials "
                "(AWS_ENDPOINT_URL_SQS, AWS_ACCESS_KEY_ID...) of the sandbox's environment",
            )
            return
        self.stats.batches += 1
        failed = answer.get("Failed") or []
        sent = {int(s["Id"]) for s in answer.get("Successful") or []}
        by_type = self.stats.by_type
        for i in sent:
            event_type = str(items[i].event.get("eventType"))
            by_type[event_type] = by_type.get(event_type, 0) + 1
        self.stats.published += len(sent)
        if failed:
            self.stats.failed += len(failed)
            log.error(
                "sandbox_events_publish_refused",
                queue_url=queue_url,
                events=len(failed),
                codes=sorted({str(f.get("Code")) for f in failed}),
            )

    async def _drain(self) -> None:
        """Publish everything still waiting (delay or not), then close the SQS client."""
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self.wait_spawned()
        except TimeoutError:
            log.warning(
                "sandbox_events_drain_timeout", left=len(self._heap), timeout_s=DRAIN_TIMEOUT_S
            )
            for task in list(self._spawned):
                task.cancel()
            await self.wait_spawned()
        finally:
            await self._clients.aclose()


def _jitter(rng: random.Random, config: SandboxConfig) -> float:
    jitter = config.events_jitter_ms
    return rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
