"""A message a handler holds, and the one way it leaves: a delete or a hand-back.

The invariant every queue handler keeps (see docs/failure-semantics.md): **a held message
always leaves by a delete or a hand-back**, and only a live task holds one. :class:`Holding`
is the base that enforces it: every way out goes through :meth:`Holding.delete`,
:meth:`Holding.release` or :meth:`Holding.hand_back`; a task's ``finally`` calls
:meth:`Holding.ensure_settled`; a shielded conclusion that outlives its cancelled task settles
the message itself when it ends. Settling is what stops the visibility extender.

On the queue's last allowed receive a hand-back would send the message to the dead-letter
queue: the subclass's :meth:`Holding.exhaust` records a final status first.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from worker.logs import get_logger
from worker.queue.acks import AckBatcher
from worker.queue.extender import VisibilityExtender
from worker.queue.message import QueueMessage
from worker.sending.sender import SendProgress
from worker.status.model import Claim, RecordFields

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Delete:
    """Done with it: delete the message."""


@dataclass(frozen=True, slots=True)
class Release:
    """Make the message visible again in ``visible_in_s`` (whatever the receive count)."""

    visible_in_s: int


@dataclass(frozen=True, slots=True)
class HandBack:
    """Give the message back to be tried again in ``delay_s``; on the last allowed receive the
    handler keeps it and tries again in the task instead."""

    delay_s: int
    reason: str


Ack = Delete | Release | HandBack
Conclusion = Coroutine[Any, Any, HandBack | None]


class Phase(enum.Enum):
    WAITING = "waiting"  # received, not claimed: safe to hand back at once
    SENDING = "sending"  # claimed: let it finish within the grace period
    CONCLUDING = "concluding"  # writing its outcome, shielded from cancellation
    DONE = "done"


@dataclass(slots=True)
class HeldMessage:
    """A message this worker holds, how far it got, and whether it has been let go."""

    message: QueueMessage
    phase: Phase = Phase.WAITING
    progress: SendProgress = field(default_factory=SendProgress)
    settled: bool = False  # deleted or handed back: the worker no longer holds it
    fields: RecordFields | None = None
    claim: Claim | None = None
    conclusion: asyncio.Task[HandBack | None] | None = None
    orphaned: bool = False  # no task awaits ``conclusion``: it settles the message itself


class Holding:
    """The held-message invariant, for a handler to build on."""

    def __init__(
        self,
        acks: AckBatcher,
        extender: VisibilityExtender,
        *,
        max_receive_count: int,
        redelivery_base_delay_s: int,
    ) -> None:
        self._acks = acks
        self._extender = extender
        self.max_receive_count = max_receive_count
        self._base_delay_s = redelivery_base_delay_s
        # Shielded conclusions still running after their task was cancelled.
        self.concluding: set[asyncio.Task[Any]] = set()

    async def exhaust(self, held: HeldMessage, reason: str) -> HandBack | None:
        """Record the final status of a message handed back on its last allowed receive."""
        return HandBack(0, reason)

    def unsettled(self, held: HeldMessage) -> None:
        """The backstop had to settle ``held`` (observers count it)."""

    def abandon(self) -> None:
        """The shutdown's hard deadline: give up on what is still being written."""

    def last_receive(self, message: QueueMessage) -> bool:
        return message.receive_count >= self.max_receive_count

    # -- shielded conclusions --------------------------------------------------------------
    async def shielded(self, held: HeldMessage, coro: Conclusion) -> HandBack | None:
        task = self.start_conclusion(held, coro, awaited=True)
        back = await asyncio.shield(task)
        held.conclusion = None
        return back

    def start_conclusion(
        self, held: HeldMessage, coro: Conclusion, *, awaited: bool
    ) -> asyncio.Task[HandBack | None]:
        held.phase = Phase.CONCLUDING
        held.orphaned = not awaited
        task = asyncio.ensure_future(coro)
        held.conclusion = task
        self.concluding.add(task)
        task.add_done_callback(lambda t: self._concluded(held, t))
        return task

    def orphan(self, held: HeldMessage) -> bool:
        """The task was cancelled while concluding: its conclusion goes on and settles the
        message when it ends. False if there is no conclusion running."""
        if held.phase is not Phase.CONCLUDING or held.conclusion is None:
            return False
        held.orphaned = True
        if held.conclusion.done():
            self._act_on(held, held.conclusion)
        return True

    def _concluded(self, held: HeldMessage, task: asyncio.Task[HandBack | None]) -> None:
        self.concluding.discard(task)
        if held.orphaned and held.conclusion is task:
            self._act_on(held, task)

    def _act_on(self, held: HeldMessage, task: asyncio.Task[HandBack | None]) -> None:
        """A conclusion nobody awaits any more has ended: do what it asked for."""
        back: HandBack | None = None
        if task.cancelled():
            back = HandBack(self._base_delay_s, "record_cancelled")
        elif (exc := task.exception()) is not None:
            log.error(
                "record_failed",
                error=type(exc).__name__,
                detail=str(exc)[:300],
                action="the message will be delivered again and its status completed",
            )
            back = HandBack(self._base_delay_s, "record_failed")
        else:
            back = task.result()
        if back is not None:
            self.hand_back(held, back.delay_s, back.reason)
        self.ensure_settled(held)

    # -- settling: every held message ends here ---------------------------------------------
    def ensure_settled(self, held: HeldMessage) -> None:
        """The invariant's backstop: a message no task works on is handed back."""
        if held.settled:
            return
        if held.conclusion is not None and not held.conclusion.done():
            return  # its conclusion is still running and will settle it
        self.unsettled(held)
        self.hand_back(held, self._base_delay_s, "unsettled")

    def hand_back(self, held: HeldMessage, delay_s: int, reason: str) -> None:
        """Give the message back to the queue; on the last allowed receive record its final
        status first (shielded), so the DLQ holds only final requests."""
        if held.settled:
            return
        if (
            self.last_receive(held.message)
            and held.fields is not None
            and (held.conclusion is None or held.conclusion.done())
        ):
            self.start_conclusion(held, self._exhaust_or_release(held, reason), awaited=False)
            return
        self.release(held, delay_s)

    async def _exhaust_or_release(self, held: HeldMessage, reason: str) -> HandBack | None:
        back = await self.exhaust(held, reason)
        if back is not None and not held.settled:
            self.release(held, back.delay_s)  # DynamoDB down too: nothing more can be done
            log.error(
                "dead_letter_unrecorded",
                reason=back.reason,
                effect="this message may reach the dead-letter queue without a final status",
            )
        return None

    def delete(self, held: HeldMessage) -> None:
        if self._settle(held):
            self._acks.delete(held.message.message_id, held.message.receipt_handle)

    def release(self, held: HeldMessage, visibility_s: int) -> None:
        if self._settle(held):
            log.debug("released", visible_in_s=visibility_s)
            self._acks.change_visibility(
                held.message.message_id, held.message.receipt_handle, visibility_s
            )

    def let_go(self, held: HeldMessage) -> None:
        """Stop holding without an ack (the shutdown's hard deadline): the message returns
        after its visibility timeout."""
        self._settle(held)

    def _settle(self, held: HeldMessage) -> bool:
        if held.settled:
            return False
        held.settled = True
        held.phase = Phase.DONE
        self._extender.forget(held.message)
        return True
