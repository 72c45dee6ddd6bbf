"""Queue handlers, and the registry the runtime builds them from (a name -> a factory).

The runtime hosts (queue -> handler) routes: each route's messages are received, held (kept
invisible by the route's extender) and acknowledged (through the route's ack batcher) by the
runtime; the handler decides what to do with each and settles it (:mod:`worker.handlers.held`).
A new handler is a module and an entry in :data:`HANDLERS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from worker.handlers.held import HeldMessage
from worker.health import DependencyHealth
from worker.metrics import Metrics
from worker.queue.acks import AckBatcher
from worker.queue.extender import VisibilityExtender
from worker.sending.cooldown import Cooldown
from worker.sending.limiter import Limiter
from worker.settings import Settings


class Handler(Protocol):
    #: Shielded conclusions still running after their task was cancelled (the shutdown
    #: waits for them until its hard deadline).
    concluding: set[asyncio.Task[Any]]

    async def handle(self, held: HeldMessage) -> None: ...

    def abandon(self) -> None:
        """The shutdown's hard deadline: give up on what is still being written."""
        ...


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What the runtime gives a handler factory: shared state, the route's acks and
    extender, and the exit stack to open the handler's own services on."""

    settings: Settings
    stack: AsyncExitStack
    clients: Any  # worker.aws.clients.AwsClients (botocore: the control plane)
    hot: Any  # worker.aws.fastpath.FastPath (the JSON API clients: the per-message calls)
    acks: AckBatcher
    extender: VisibilityExtender
    metrics: Metrics
    health: DependencyHealth
    cooldown: Cooldown
    limiter: Limiter
    stopping: asyncio.Event
    max_receive_count: int
    listeners: tuple[Any, ...] = ()  # more observers of the handler's outcome events


HandlerFactory = Callable[[HandlerContext], Awaitable[Handler]]


async def _send(ctx: HandlerContext) -> Handler:
    from worker.handlers.send import build

    return await build(ctx)


async def _events(ctx: HandlerContext) -> Handler:
    from worker.handlers.events import build

    return await build(ctx)


#: name -> factory.
HANDLERS: dict[str, HandlerFactory] = {"send": _send, "events": _events}
