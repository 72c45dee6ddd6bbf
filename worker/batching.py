"""The linger batcher: items queued synchronously, sent in batches by tasks of their own.

An item is queued by a plain call (so a caller's cancellation cannot lose it) into its lane
(:meth:`LingerBatcher._lane`; one lane unless a subclass says otherwise, e.g. deletes apart
from visibility changes). A lane is dispatched at once when it holds ``max_batch`` items,
otherwise at the latest ``linger_s`` after its first item waited (one timer, armed by the
first item queued; ``linger_s = 0`` dispatches at once). Dispatching a lane sends every item
in it, in batches that :meth:`LingerBatcher._take` picks (by default the first ``max_batch``;
a subclass may hold an item back for the next batch), each batch in a task of its own (kept
and reaped by :class:`~worker.lifecycle.BackgroundService`). :meth:`LingerBatcher._send` is
the subclass's: it owns the batch's retries, logs and metrics.

``flush()`` dispatches everything and waits for it; ``close()`` (idempotent, and what
``async with`` ends with) flushes. Items queued after ``close`` are still dispatched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

from worker.lifecycle import BackgroundService

T = TypeVar("T")


class LingerBatcher(BackgroundService, Generic[T]):
    def __init__(self, name: str, *, max_batch: int, linger_s: float) -> None:
        if max_batch < 1:
            raise ValueError(f"{name}: max_batch must be >= 1, got {max_batch}")
        if linger_s < 0:
            raise ValueError(f"{name}: linger_s must be >= 0, got {linger_s}")
        super().__init__(name)
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._queued: dict[Hashable, list[T]] = {}
        self._timer: asyncio.TimerHandle | None = None

    # -- what a subclass supplies -------------------------------------------------------------
    def _lane(self, item: T) -> Hashable:
        """Which lane ``item`` waits in: only items of one lane share a batch."""
        return None

    def _take(self, queued: list[T]) -> tuple[list[T], list[T]]:
        """Split a lane into the next batch (at least one item) and what waits for the next."""
        return queued[: self.max_batch], queued[self.max_batch :]

    async def _send(self, batch: list[T]) -> None:
        """Send one batch (in a task of its own)."""
        raise NotImplementedError

    # -- producers ----------------------------------------------------------------------------
    def _add(self, item: T) -> None:
        lane = self._lane(item)
        queue = self._queued.setdefault(lane, [])
        queue.append(item)
        if len(queue) >= self.max_batch or self.linger_s == 0:
            self._dispatch(lane)
        if self._queued.get(lane) and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self._lingered)

    @property
    def queued(self) -> int:
        """Items waiting for a batch."""
        return sum(len(q) for q in self._queued.values())

    @property
    def pending(self) -> int:
        """Items waiting for a batch plus batches in flight."""
        return self.queued + self.in_flight

    # -- dispatching --------------------------------------------------------------------------
    def _lingered(self) -> None:
        self._timer = None
        self._dispatch_all()

    def _dispatch_all(self) -> None:
        for lane in list(self._queued):
            while self._queued.get(lane):
                self._dispatch(lane)

    def _dispatch(self, lane: Hashable) -> None:
        queued = self._queued.get(lane)
        if not queued:
            return
        batch, rest = self._take(queued)
        if not batch:
            raise RuntimeError(f"{self.name}: _take picked no item out of {len(queued)}")
        if rest:
            self._queued[lane] = rest
        else:
            del self._queued[lane]
        self.spawn(self._send(batch), name=f"{self.name}-batch")

    async def flush(self) -> None:
        """Dispatch everything queued and wait until nothing is queued or in flight. Under a
        timeout (``asyncio.timeout``) the wait ends, the batches in flight go on."""
        while True:
            self._dispatch_all()
            if not self._spawned:
                return
            await self.wait_spawned()

    async def _drain(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
