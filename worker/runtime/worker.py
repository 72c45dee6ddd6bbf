"""The worker: startup (open everything once) -> serve (the routes' pollers) -> shutdown.

It hosts (queue -> handler) routes (:func:`routes`, :data:`worker.handlers.HANDLERS`); the
shutdown's order is written out in :meth:`Worker._shutdown` and explained in
docs/failure-semantics.md ("Shutdown").
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import Any

from worker.aws.clients import open_clients
from worker.aws.fastpath import open_fast_path
from worker.handlers import HANDLERS, Handler, HandlerContext
from worker.handlers.held import HeldMessage, Phase
from worker.health import DependencyHealth
from worker.lifecycle import Periodic
from worker.logs import get_logger
from worker.metrics import Metrics
from worker.observe.http import Observed, ObserveServer
from worker.observe.progress import ProgressLine
from worker.observe.queues import SAMPLED_ATTRIBUTES, QueueSampler
from worker.observe.trace_switch import Tracing
from worker.queue import redrive
from worker.queue.acks import AckBatcher
from worker.queue.consumer import Consumer
from worker.queue.extender import VisibilityExtender
from worker.queue.message import QueueMessage
from worker.runtime.startup import check_dependencies
from worker.sending.cooldown import Cooldown
from worker.sending.limiter import SHARING_BACKENDS, Limiter, LimiterContext, build_limiter
from worker.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """One queue and the handler (a name in :data:`worker.handlers.HANDLERS`) of its messages."""

    handler: str
    queue_url: str


def routes(settings: Settings, handlers: tuple[str, ...] | None = None) -> list[Route]:
    """The (queue -> handler) pairs this worker hosts: the send requests, and the delivery
    events when an events queue is configured (``handlers``: only those, e.g. ``events``
    for ``sms-worker events``)."""
    hosted = [Route("send", settings.queue_url)]
    if settings.events_queue_url:
        hosted.append(Route("events", settings.events_queue_url))
    return [route for route in hosted if handlers is None or route.handler in handlers]


@dataclass(slots=True)
class _Hosted:
    """A route as it runs: its acks, its extender, its handler, its slots, its pollers.

    Each route has ``max_in_flight`` slots of its own: sends held for their rate's tokens
    never take the slots the delivery events need (which would back the events queue up)."""

    route: Route
    acks: AckBatcher
    extender: VisibilityExtender
    handler: Handler
    slots: asyncio.Semaphore
    pollers: set[asyncio.Task[None]] = field(default_factory=set)


class Worker:
    def __init__(self, settings: Settings, handlers: tuple[str, ...] | None = None) -> None:
        self.settings = settings
        self.handlers = handlers  # None: every route of routes(settings)
        self.metrics = Metrics()
        self.cooldown = Cooldown(
            settings.cooldown_s, spend_limit_probe_s=settings.spend_limit_probe_s
        )
        self.health = DependencyHealth()
        self.limiter: Limiter | None = None  # built at start-up, once the clients are open
        self.stopping = asyncio.Event()
        self.forced = asyncio.Event()
        self.ready = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], HeldMessage] = {}
        self._hosted: list[_Hosted] = []
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

    @property
    def tasks_running(self) -> int:
        """Messages a live task is working on."""
        return len(self._tasks)

    @property
    def messages_tracked(self) -> int:
        """Messages the visibility extenders keep invisible (never more than tasks_running)."""
        return sum(len(hosted.extender) for hosted in self._hosted)

    # -- run: startup -> serve -> shutdown -------------------------------------------------
    async def run(self) -> int:
        async with AsyncExitStack() as stack:
            await self._startup(stack)
            exit_code = await self._wait_for_stop()
            await self._shutdown()
        log.info("shutdown_finished", **self.metrics.snapshot())
        return exit_code

    async def _startup(self, stack: AsyncExitStack) -> None:
        """Open everything once, in order: the limiter and the observe endpoint, the clients,
        then per route its ack batcher, extender and handler; start the pollers last."""
        s = self.settings
        clients = await open_clients(stack, s)
        hot = await open_fast_path(stack, s, clients)
        backend = SHARING_BACKENDS[s.rate_sharing]
        self.limiter = build_limiter(backend, LimiterContext(s, stack, clients, hot, self.health))
        self.queues = QueueSampler(clients.sqs, s.queue_url, self.health, self._held)
        if s.metrics_port:
            await stack.enter_async_context(self.queues)  # sampled only for /metrics
            observed = Observed(
                self.metrics, self.limiter, self.cooldown, self.ready, self.stopping,
                self.health, s.dependency_unready_s, self.queues,
            )  # fmt: skip
            server = ObserveServer(observed, s.metrics_host, s.metrics_port)
            await stack.enter_async_context(server)
            self.http_port = server.port
        await check_dependencies(
            s, clients, [route.queue_url for route in routes(s, self.handlers)]
        )
        tracing = Tracing.from_settings(s)
        receive_counts = {}
        for route in routes(s, self.handlers):
            max_receive_count = await redrive.max_receive_count(
                clients.sqs, route.queue_url, s.max_receive_count
            )
            receive_counts[route.handler] = max_receive_count
            acks = AckBatcher(
                hot.sqs,
                route.queue_url,
                self.metrics,
                s.ack_linger_ms,
                health=self.health,
                retry_budget_s=s.visibility_timeout_s / 2,
            )
            await stack.enter_async_context(acks)
            extender = VisibilityExtender(acks, s.visibility_timeout_s)
            ctx = HandlerContext(
                s, stack, clients, hot, acks, extender, self.metrics, self.health,
                self.cooldown, self.limiter, self.stopping, max_receive_count,
                tracing.listeners,
            )  # fmt: skip
            handler = tracing.wrap(await HANDLERS[route.handler](ctx), route.handler)
            hosted = _Hosted(route, acks, extender, handler, asyncio.Semaphore(s.max_in_flight))
            self._hosted.append(hosted)
        for hosted in self._hosted:
            hosted.extender.start()
            consumer = Consumer(
                hot.sqs,
                hosted.route.queue_url,
                wait_time_s=s.wait_time_s,
                visibility_timeout_s=s.visibility_timeout_s,
                slots=hosted.slots,
                spawn=functools.partial(self._spawn, hosted),
                cooldown=self.cooldown,
                health=self.health,
                stopping=self.stopping,
                metrics=self.metrics,
                busy=lambda: len(self._tasks) > 0,
                batch_linger_s=s.receive_linger_ms / 1000,
                batch_target=s.receive_batch_target,
                # only sends are paced: the events queue's handler books no token
                room=self.limiter.room if hosted.route.handler == "send" else None,
                hold_ahead_s=s.receive_hold_ahead_s,
                system_attributes=tracing.system_attributes
                + (SAMPLED_ATTRIBUTES if s.metrics_port else ()),
                message_attributes=tracing.message_attributes,
            )
            hosted.pollers = {
                asyncio.create_task(consumer.poll(i), name=f"poller-{hosted.route.handler}-{i}")
                for i in range(s.pollers)
            }
        if s.progress_interval_s > 0:
            line = ProgressLine(self.metrics, self.cooldown, self.limiter)
            progress = Periodic("progress", s.progress_interval_s, line)
            progress.start()
            stack.push_async_callback(progress.stop)
        log.info(
            "started",
            pollers=s.pollers,
            max_in_flight=s.max_in_flight,
            max_receive_count=receive_counts.get("send"),
            rate_limits=json.dumps(s.rate_limits, sort_keys=True),
            rate_sharing=s.rate_sharing,
            # what the start-up cost (imports, clients, checks): the pollers have not run yet
            startup_cpu_s=round(time.process_time(), 3),
        )
        self.ready.set()

    async def _wait_for_stop(self) -> int:
        pollers = {t for hosted in self._hosted for t in hosted.pollers}
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

    def _spawn(self, hosted: _Hosted, message: QueueMessage) -> None:
        held = HeldMessage(message)
        hosted.extender.track(message)
        task = asyncio.create_task(hosted.handler.handle(held))
        self._tasks[task] = held
        self.metrics.in_flight += 1
        task.add_done_callback(functools.partial(self._reap, hosted))

    def _held(self) -> list[QueueMessage]:
        return [held.message for held in self._tasks.values()]

    def _reap(self, hosted: _Hosted, task: asyncio.Task[None]) -> None:
        # The message itself was settled by its handler (its ``finally`` sees to it).
        self._tasks.pop(task, None)
        self.metrics.in_flight -= 1
        hosted.slots.release()
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("task_crashed", error=repr(exc))

    # -- shutdown --------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        """Stop receiving; hand back what is not claimed; let claimed sends finish within
        the grace period, then cancel; wait for the shielded status writes until the hard
        deadline, then abandon what is still held; flush the acks; stop the extenders last."""
        s = self.settings
        waiting = [t for t, h in self._tasks.items() if h.phase is Phase.WAITING]
        log.info(
            "shutdown_started",
            in_flight=len(self._tasks),
            not_started=len(waiting),
            grace_s=s.shutdown_grace_s,
        )
        loops = {t for hosted in self._hosted for t in hosted.pollers}
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
        concluding = [t for hosted in self._hosted for t in hosted.handler.concluding]
        if concluding:
            await asyncio.wait(concluding, timeout=max(0.0, deadline - time.monotonic()))
        if any(hosted.handler.concluding for hosted in self._hosted):
            # The hard deadline: SENT records still held by a DynamoDB fault are given up
            # (logged with their count); their conclusions then end at once.
            for hosted in self._hosted:
                hosted.handler.abandon()
            left = [t for hosted in self._hosted for t in hosted.handler.concluding]
            await asyncio.wait(left, timeout=1.0)
        for hosted in self._hosted:
            try:
                await asyncio.wait_for(
                    hosted.acks.close(), timeout=max(1.0, deadline - time.monotonic())
                )
            except TimeoutError:
                log.error(
                    "ack_flush_timeout",
                    pending=hosted.acks.pending,
                    effect="those messages will be delivered again and skipped as duplicates",
                )
        for hosted in self._hosted:
            await hosted.extender.close()  # last: every message still held stayed invisible

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
