"""Keep held messages invisible while they wait for a token or are being sent.

Each held message has a visibility deadline (received + visibility timeout). Once a second the
extender looks for messages within a third of the timeout of their deadline and pushes them
out by another full timeout, in ``ChangeMessageVisibilityBatch`` calls (through the ack
batcher), so nothing is redelivered to another worker while this one still works on it.

The extender is a :class:`~worker.lifecycle.BackgroundService`: ``start()`` / ``close()`` (or
``async with``) run its loop in a task of its own; ``run()`` is the same loop in the caller's
task. A failed round is logged (``periodic_failed``) and the next one goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.lifecycle import BackgroundService
from worker.logs import get_logger
from worker.queue.acks import AckBatcher
from worker.queue.message import QueueMessage

log = get_logger(__name__)


@dataclass(slots=True)
class _Tracked:
    message: QueueMessage
    deadline: float  # monotonic time the message becomes visible again


class VisibilityExtender(BackgroundService):
    def __init__(
        self,
        acks: AckBatcher,
        visibility_timeout_s: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__("visibility-extender")
        self._acks = acks
        self._timeout_s = visibility_timeout_s
        self._margin_s = visibility_timeout_s / 3
        self._clock = clock
        self._held: dict[str, _Tracked] = {}
        self.extended_total = 0
        self.every(interval_s, self.extend_due)

    def track(self, message: QueueMessage) -> None:
        self._held[message.receipt_handle] = _Tracked(message, self._clock() + self._timeout_s)

    def forget(self, message: QueueMessage) -> None:
        self._held.pop(message.receipt_handle, None)

    def __len__(self) -> int:
        return len(self._held)

    def extend_due(self) -> int:
        """Extend every message near its deadline; returns how many."""
        now = self._clock()
        due = [t for t in self._held.values() if t.deadline - now <= self._margin_s]
        for tracked in due:
            message = tracked.message
            self._acks.change_visibility(
                message.message_id, message.receipt_handle, self._timeout_s
            )
            tracked.deadline = now + self._timeout_s
        if due:
            self.extended_total += len(due)
            log.info("visibility_extended", messages=len(due), visible_for_s=self._timeout_s)
        return len(due)
