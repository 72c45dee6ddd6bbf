"""One lifecycle for the worker's background services: start, close, ``async with``.

A background service owns two kinds of tasks, and this module keeps both, so no service
hand-rolls a runner task, a set of tasks in flight or a cancel-and-gather again:

- **loops** (:class:`Periodic`): call a function every ``interval_s`` (a visibility extension,
  a counters flush), or, for a loop declared ``returns_due_s``, when its function says it is
  due again (at most ``interval_s`` later), and at once when :meth:`Periodic.poke` says work
  came in: a loop that knows its next deadline sleeps until it instead of ticking (each
  wake-up of an idle process costs CPU; a 0.2-s tick cost a worker 1 ms of CPU a second).
  Declared with :meth:`BackgroundService.every`, started by ``start()``, cancelled and
  awaited by ``close()``. A call that raises is logged (``periodic_failed``, with the loop's
  name) and the loop goes on at the next interval: one bad call neither ends the loop
  unnoticed nor takes the service down.
- **work** (:meth:`BackgroundService.spawn`): one-off tasks such as a batch in flight. Kept in
  a set until done (so they are not garbage-collected mid-flight), reaped by a done callback
  that logs an unexpected exception (``background_task_failed``) instead of leaving it for
  the garbage collector, and awaited by ``close()`` (through :meth:`BackgroundService._drain`,
  which a service overrides to flush what it holds).

``start()`` is synchronous, as it only creates tasks (it needs a running loop); ``close()``
stops the loops first, then drains; both are idempotent, and ``async with`` is start/close.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any, Self

from worker.logs import get_logger

log = get_logger(__name__)


class Periodic:
    """Call ``fn`` (plain or async) every ``interval_s`` seconds, the first time one interval
    after the start, until stopped; a call that raises is logged and the loop goes on. With
    ``returns_due_s``, ``fn`` returns the seconds until it is due again, and the next call
    comes then (at most ``interval_s``, at least ``MIN_DUE_S`` later). :meth:`poke` makes
    the next call now."""

    #: The shortest wait between two calls (a due time in the past is no busy loop).
    MIN_DUE_S = 0.001

    def __init__(
        self,
        name: str,
        interval_s: float,
        fn: Callable[[], object],
        *,
        returns_due_s: bool = False,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"{name}: interval_s must be > 0 seconds, got {interval_s}")
        self.name = name
        self.interval_s = interval_s
        self._fn = fn
        self._returns_due_s = returns_due_s
        self._task: asyncio.Task[None] | None = None
        self._poked = asyncio.Event()
        self.failures = 0

    async def run(self) -> None:
        """The loop itself, in the caller's task; ends only by cancellation."""
        wait_s = self.interval_s
        while True:
            if not self._poked.is_set():
                with suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._poked.wait()
            self._poked.clear()
            wait_s = self._next_wait_s(await self.call())

    def poke(self) -> None:
        """Make the next call now (work came in that may be due before the wait ends)."""
        self._poked.set()

    def _next_wait_s(self, due_s: object) -> float:
        if self._returns_due_s and isinstance(due_s, int | float):
            return min(self.interval_s, max(self.MIN_DUE_S, float(due_s)))
        return self.interval_s

    async def call(self) -> object:
        """One call of ``fn`` and what it returned (``None`` if it raised: an exception other
        than cancellation is logged, not raised)."""
        try:
            result = self._fn()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            self.failures += 1
            log.error("periodic_failed", loop=self.name, error=repr(exc), failures=self.failures)
            return None
        return result

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run the loop in a task of its own; idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end; idempotent. A call in progress is
        cancelled with it."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class BackgroundService:
    """The lifecycle shared by the worker's background services (see the module docstring).

    Subclasses declare their loops with :meth:`every` (in ``__init__``), run one-off work
    with :meth:`spawn`, and override :meth:`_drain` to flush what they hold on close."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loops: list[Periodic] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self._started = False
        self._closed = False

    # -- declaring the service's tasks --------------------------------------------------------
    def every(
        self,
        interval_s: float,
        fn: Callable[[], object],
        name: str = "",
        *,
        returns_due_s: bool = False,
    ) -> Periodic:
        """Declare a loop calling ``fn`` every ``interval_s`` (or when it says it is due, see
        :class:`Periodic`): started by ``start()`` (at once if the service already runs),
        stopped by ``close()``."""
        loop = Periodic(name or self.name, interval_s, fn, returns_due_s=returns_due_s)
        self._loops.append(loop)
        if self._started and not self._closed:
            loop.start()
        return loop

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run ``coro`` in a task kept until done; an unexpected exception is logged."""
        task = asyncio.create_task(coro, name=name or self.name)
        self._spawned.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._spawned.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "background_task_failed", service=self.name, task=task.get_name(), error=repr(exc)
            )

    @property
    def in_flight(self) -> int:
        """Spawned tasks not done yet."""
        return len(self._spawned)

    async def wait_spawned(self) -> None:
        """Wait until no spawned task is left (including those spawned meanwhile); never
        raises their exceptions. Cancelling this wait leaves the tasks running."""
        while self._spawned:
            await asyncio.wait(list(self._spawned))

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._started and not self._closed

    def start(self) -> None:
        """Start the declared loops; idempotent. Needs a running event loop."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed; it cannot be started again")
        if self._started:
            return
        self._started = True
        for loop in self._loops:
            loop.start()

    async def close(self) -> None:
        """Stop the loops, then drain (by default: wait for the spawned work); idempotent.
        What ``_drain`` raises is raised here, once."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(loop.stop() for loop in self._loops))
        await self._drain()

    async def _drain(self) -> None:
        """What ``close`` does once the loops are stopped: a service flushes here."""
        await self.wait_spawned()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
