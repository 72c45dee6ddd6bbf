"""The worker: open resources once, run the pollers, reap tasks, shut down in order.

Shutdown (first SIGTERM/SIGINT): stop receiving; hand back at once every message not yet
claimed; let claimed sends finish within ``shutdown_grace_s``; then cancel what is left (a send
between retries records RETRYING and is handed back; one inside a call keeps its claim and is
handed back for when its lease has passed); wait at most ``shutdown_hard_s`` for the shielded
status writes (a SENT record still held by a DynamoDB fault is abandoned only then, and
logged); flush the acknowledgements; stop the visibility extender last, so every message
still held stays invisible until it is let go; close the clients. A second signal skips the
grace period: nothing is lost, because SQS redelivers whatever was not deleted.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack, suppress
from typing import Any

from worker.aws.clients import AwsClients, open_clients
from worker.aws.hotpath import open_hot_path
from worker.health import DependencyHealth
from worker.logs import get_logger
from worker.masking import mask_identity
from worker.metrics import Metrics
from worker.observe.http import Observed, ObserveServer
from worker.pipeline import Held, Phase, Pipeline
from worker.queue.acks import AckBatcher
from worker.queue.consumer import Consumer
from worker.queue.extender import VisibilityExtender
from worker.queue.message import QueueMessage
from worker.sending.cooldown import Cooldown
from worker.sending.ratelimit import RateLimiter
from worker.sending.sender import Sender
from worker.settings import Settings
from worker.status.counters import CampaignCounters, CountersFlushError
from worker.status.sent_writer import SentWriter
from worker.status.store import StatusStore

log = get_logger(__name__)

DEFAULT_MAX_RECEIVE_COUNT = 10


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.cooldown = Cooldown(settings.cooldown_s)
        self.health = DependencyHealth()
        # A bucket stays while a request may hold it: a token wait, then a lease of retries.
        self.limiter = RateLimiter(
            settings.rate_limits,
            settings.rate_burst_s,
            in_use_s=settings.max_token_wait_s + settings.lease_s + 30,
        )
        self.stopping = asyncio.Event()
        self.forced = asyncio.Event()
        self.ready = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Held] = {}
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._pipeline: Pipeline | None = None
        self._extender: VisibilityExtender | None = None
        self.http_port: int | None = None

    # -- control ---------------------------------------------------------------------------
    def request_stop(self, reason: str = "signal") -> None:
        """What a signal handler calls: the first asks for a graceful stop, the second forces.
        The flag is set before anything is logged: a failing log stream cannot stop a stop."""
        if self.stopping.is_set():
            if not self.forced.is_set():
                self.forced.set()
                _log_quietly("shutdown_forced", reason=reason)
            return
        self.stopping.set()
        _log_quietly("shutdown_requested", reason=reason)

    # -- run -------------------------------------------------------------------------------
    async def run(self) -> int:
        s = self.settings
        async with AsyncExitStack() as stack:
            if s.metrics_port:
                observed = Observed(
                    self.metrics,
                    self.limiter,
                    self.cooldown,
                    self.ready,
                    self.stopping,
                    self.health,
                    s.dependency_unready_s,
                )
                server = ObserveServer(observed, s.metrics_host, s.metrics_port)
                await stack.enter_async_context(server)
                self.http_port = server.port
            clients = await open_clients(stack, s)
            max_receive_count = await self._max_receive_count(clients)
            hot = await open_hot_path(stack, s, clients)
            acks = AckBatcher(
                hot.sqs,
                s.queue_url,
                self.metrics,
                s.ack_flush_ms,
                health=self.health,
                retry_budget_s=s.visibility_timeout_s / 2,
            )
            await stack.enter_async_context(acks)
            self._extender = VisibilityExtender(acks, s.visibility_timeout_s)
            store = StatusStore(
                hot.dynamodb,
                s.table,
                lease_s=s.lease_s,
                ttl_days=s.record_ttl_days,
                health=self.health,
            )
            counters = None
            if s.campaign_counters_flush_s > 0:
                counters = CampaignCounters(
                    clients.dynamodb,
                    s.table,
                    s.campaign_counters_flush_s,
                    ttl_days=s.record_ttl_days,
                )
                counters.start()
                stack.push_async_callback(_close_counters, counters)
            sent_writer = SentWriter(hot.dynamodb, s.table, s.sent_batch_ms, health=self.health)
            await stack.enter_async_context(sent_writer)
            sender = Sender(hot.sms, self.limiter, s, self.metrics, health=self.health)
            self._pipeline = Pipeline(
                s,
                store=store,
                sent_writer=sent_writer,
                counters=counters,
                sender=sender,
                limiter=self.limiter,
                acks=acks,
                extender=self._extender,
                cooldown=self.cooldown,
                metrics=self.metrics,
                health=self.health,
                stopping=self.stopping,
                max_receive_count=max_receive_count,
            )
            consumer = Consumer(
                hot.sqs,
                s.queue_url,
                wait_time_s=s.wait_time_s,
                visibility_timeout_s=s.visibility_timeout_s,
                slots=self._slots,
                spawn=self._spawn,
                cooldown=self.cooldown,
                health=self.health,
                stopping=self.stopping,
                metrics=self.metrics,
                busy=lambda: len(self._tasks) > 0,
                batch_linger_s=s.receive_linger_ms / 1000,
            )
            pollers = {
                asyncio.create_task(consumer.poll(i), name=f"poller-{i}") for i in range(s.pollers)
            }
            progress = asyncio.create_task(self._progress_loop(), name="progress")
            extender = asyncio.create_task(self._extender.run(), name="visibility-extender")
            log.info(
                "started",
                pollers=s.pollers,
                max_in_flight=s.max_in_flight,
                max_receive_count=max_receive_count,
                rate_limits=json.dumps(s.rate_limits, sort_keys=True),
            )
            self.ready.set()
            exit_code = await self._wait_for_stop(pollers)
            await self._shutdown(pollers | {progress}, acks, sent_writer, extender)
        log.info("shutdown_finished", **self.metrics.snapshot())
        return exit_code

    async def _wait_for_stop(self, pollers: set[asyncio.Task[None]]) -> int:
        stop = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({stop, *pollers}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if self.stopping.is_set():
            return 0  # pollers end their loops on stop: that is not a crash
        for task in done - {stop}:
            exc = None if task.cancelled() else task.exception()
            log.error("poller_crashed", poller=task.get_name(), error=repr(exc))
            self.stopping.set()
            return 1
        return 0

    async def _max_receive_count(self, clients: AwsClients) -> int:
        if self.settings.max_receive_count is not None:
            return self.settings.max_receive_count
        response = await clients.sqs.get_queue_attributes(
            QueueUrl=self.settings.queue_url, AttributeNames=["RedrivePolicy"]
        )
        policy = (response.get("Attributes") or {}).get("RedrivePolicy")
        if not policy:
            log.warning(
                "no_redrive_policy",
                max_receive_count=DEFAULT_MAX_RECEIVE_COUNT,
                action="give the queue a dead-letter queue (sms-worker init does)",
            )
            return DEFAULT_MAX_RECEIVE_COUNT
        return int(json.loads(policy)["maxReceiveCount"])

    def _spawn(self, message: QueueMessage) -> None:
        assert self._pipeline is not None
        assert self._extender is not None
        held = Held(message)
        self._extender.track(message)
        task = asyncio.create_task(self._pipeline.handle(held))
        self._tasks[task] = held
        self.metrics.in_flight += 1
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[None]) -> None:
        # The message itself was settled by the pipeline (its ``finally`` sees to it).
        self._tasks.pop(task, None)
        self.metrics.in_flight -= 1
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("task_crashed", error=repr(exc))

    async def _progress_loop(self) -> None:
        interval = self.settings.progress_interval_s
        if interval <= 0:
            return
        last_sent, last_t = 0, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            snap = self.metrics.snapshot()
            sent = self.metrics.sent
            log.info(
                "progress",
                sends_per_s=round((sent - last_sent) / (now - last_t), 2),
                cooldown=self.cooldown.reason,
                identity_rates=json.dumps(
                    {
                        mask_identity(k): round(b.rate_mps, 2)
                        for k, b in self.limiter.most_recent(20)
                    }
                ),
                **snap,
            )
            last_sent, last_t = sent, now

    # -- shutdown --------------------------------------------------------------------------
    async def _shutdown(
        self,
        loops: set[asyncio.Task[Any]],
        acks: AckBatcher,
        sent_writer: SentWriter,
        extender: asyncio.Task[None],
    ) -> None:
        s = self.settings
        waiting = [t for t, h in self._tasks.items() if h.phase is Phase.WAITING]
        log.info(
            "shutdown_started",
            in_flight=len(self._tasks),
            not_started=len(waiting),
            grace_s=s.shutdown_grace_s,
        )
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for task in waiting:
            task.cancel()  # handed back at once: visibility 0
        await self._wait_tasks(s.shutdown_grace_s)
        deadline = time.monotonic() + (1.0 if self.forced.is_set() else s.shutdown_hard_s)
        if self._tasks:
            log.warning("shutdown_cancelling", in_flight=len(self._tasks))
            for task in list(self._tasks):
                task.cancel()
            await asyncio.wait(list(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
        assert self._pipeline is not None
        concluding = self._pipeline.concluding
        if concluding:
            await asyncio.wait(list(concluding), timeout=max(0.0, deadline - time.monotonic()))
        if concluding:
            # The hard deadline: SENT records still held by a DynamoDB fault are given up
            # (logged with their count); their conclusions then end at once.
            sent_writer.abandon()
            await asyncio.wait(list(concluding), timeout=1.0)
        try:
            await asyncio.wait_for(acks.close(), timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            log.error(
                "ack_flush_timeout",
                pending=acks.pending,
                effect="those messages will be delivered again and skipped as duplicates",
            )
        extender.cancel()
        await asyncio.gather(extender, return_exceptions=True)

    async def _wait_tasks(self, grace_s: float) -> None:
        deadline = time.monotonic() + grace_s
        forced = asyncio.create_task(self.forced.wait())
        try:
            while self._tasks and not self.forced.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                await asyncio.wait(
                    {*self._tasks, forced},
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            forced.cancel()


def _log_quietly(event: str, **fields: Any) -> None:
    """Log, but never raise: a broken log pipe must not change what the worker does."""
    with suppress(Exception):
        log.info(event, **fields)


async def _close_counters(counters: CampaignCounters) -> None:
    """Final flush of the campaign counters; a failure is logged (by the counters), not fatal:
    the per-request records stay authoritative."""
    with suppress(CountersFlushError):
        await counters.close()
