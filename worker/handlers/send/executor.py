"""Carry a send decision out: write the status, tell the listeners, acknowledge.

The thin executor of :mod:`worker.handlers.send.decide`: it does I/O and nothing it decides
itself, apart from retrying a status write through a DynamoDB fault while the worker runs (the
message stays held meanwhile). It also concludes a send cut short by a shutdown.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

from worker.aws.errors import describe, is_unavailable
from worker.backoff import compute_backoff_s
from worker.handlers.held import Delete, HandBack, HeldMessage, Holding, Phase, Release
from worker.handlers.send import decide as d
from worker.handlers.send.events import Listeners, OutcomeEvent
from worker.health import SMS, DependencyHealth
from worker.logs import get_logger
from worker.sending.cooldown import Cooldown
from worker.sending.errors import ErrorKind, SendError
from worker.sending.sender import SendResult
from worker.settings import Settings
from worker.status.model import Claim, ClaimRefused, Outcome, Recorded, Status
from worker.status.sent_writer import SentAbandoned, SentWriter
from worker.status.store import StatusStore

log = get_logger("worker.handlers.send")


class DecisionExecutor(Holding):
    def __init__(self, settings: Settings, *, store: StatusStore, sent_writer: SentWriter,
                 cooldown: Cooldown, health: DependencyHealth, listeners: Listeners,
                 stopping: asyncio.Event, **holding: Any) -> None:  # fmt: skip
        super().__init__(redelivery_base_delay_s=settings.redelivery_base_delay_s, **holding)
        self._s, self._store, self._sent_writer = settings, store, sent_writer
        self._cooldown, self._health = cooldown, health
        self._listeners, self._stopping = listeners, stopping

    def _context(self, held: HeldMessage) -> d.Context:
        now = datetime.now(UTC)
        cooldown = self._cooldown
        return d.Context(
            held.message.receive_count,
            self.max_receive_count,
            now,
            int(now.timestamp() * 1000),
            stopping=self._stopping.is_set(),
            sms_outage=self._health.failing(SMS),
            cooldown_s=cooldown.duration_s,
            cooldown_remaining_s=cooldown.remaining_s,
            spend_limit_probe_s=self._s.spend_limit_probe_s,
            redelivery_base_delay_s=self._s.redelivery_base_delay_s,
            redelivery_max_delay_s=self._s.redelivery_max_delay_s,
            reclaim_policy=self._s.effective_reclaim_policy,
            reclaim_confirm_s=self._s.reclaim_confirm_s,
        )

    def _emit(self, kind: d.Kind, held: HeldMessage, outcome: Outcome | None = None, *,
              reopened: bool = False, **detail: Any) -> None:  # fmt: skip
        if reopened:
            detail["replayed"] = True  # this delivery re-opened a FAILED/RETRIES_EXHAUSTED record
        self._listeners.emit(OutcomeEvent(kind, held.fields, outcome, detail, reopened))

    async def _carry_out(self, held: HeldMessage, step: d.Decision, claim: Claim | None = None,
                         result: SendResult | None = None) -> HandBack | None:  # fmt: skip
        """Write what ``step`` says, tell the listeners, acknowledge (a hand-back is returned
        to the caller: on the last receive it keeps the message)."""
        calls = result.calls if result is not None else max(1, held.progress.calls)
        keys: dict[str, Any] = {} if claim is None else {"attempt": claim.attempts_after(calls)}
        reopened = False  # the claim's re-opening was told with Kind.CLAIMED
        if step.cooldown is not None:
            self._cooldown.trigger(step.cooldown)
        self._channel_state(held, step, result)
        if step.outcome is not None and step.outcome.status is Status.SENT:
            assert claim is not None and held.fields is not None and step.message_id is not None
            try:
                await self._sent_writer.write(claim, held.fields, step.message_id, calls)
            except SentAbandoned:
                self._emit(d.Kind.SENT_ABANDONED, held)
                self.let_go(held)
                return None
            keys["latency_ms"] = round(result.latency_ms, 1) if result is not None else None
            keys["dry_run"] = held.fields.dry_run or None
            keys["message_id"] = step.message_id  # joins the log with the provider's records
            keys["campaign_id"] = held.fields.campaign_id
        elif step.outcome is not None:
            written = await self._write(held, step.outcome, claim, calls)
            if isinstance(written, HandBack):
                return written
            if claim is not None and not isinstance(written, ClaimRefused):
                # Written: the record is no longer SENDING under this claim, so whatever
                # follows (a final status on the last receive) writes without it.
                held.claim = None
            if isinstance(written, Recorded):
                reopened = written.reopened  # an EXPIRED over a replayable record
            elif written is not None:  # refused: a duplicate, a live claim, or our lease lost
                if claim is not None:
                    now_status = written.status
                    self._emit(d.Kind.LEASE_LOST, held, status=step.outcome.status,
                               now_status=now_status, **keys)  # fmt: skip
                step = d.refused(self._context(held), written)
        if step.seen_status is not None:
            keys["status"] = step.seen_status
        if step.kind is d.Kind.EXHAUSTED:
            keys["max_receive_count"] = self.max_receive_count
        elif isinstance(step.ack, Release) and step.kind is d.Kind.RETRYING:
            keys["visible_in_s"] = step.ack.visible_in_s
        elif isinstance(step.ack, HandBack):
            keys["visible_in_s"] = step.ack.delay_s
        self._emit(step.kind, held, step.outcome, reopened=reopened, **keys)
        if isinstance(step.ack, Delete):
            self.delete(held)
        elif isinstance(step.ack, Release):
            self.release(held, step.ack.visible_in_s)
        else:
            return step.ack
        return None

    def _channel_state(
        self, held: HeldMessage, step: d.Decision, result: SendResult | None
    ) -> None:
        """What a send's answer says of its channel: paused by its spend limit, or sending."""
        if step.pause_channel is not None:
            reason = step.outcome.error_reason if step.outcome is not None else None
            self._cooldown.channels[step.pause_channel].pause(reason or "SPEND_LIMIT")
            return
        channel = held.fields.channel if held.fields is not None else None
        if result is None or channel is None:
            return
        pause = self._cooldown.channels[channel]
        if result.message_id is not None:
            pause.resume()
        else:
            pause.probe_done()

    async def _write(self, held: HeldMessage, outcome: Outcome, claim: Claim | None,
                     calls: int) -> ClaimRefused | Recorded | HandBack | None:  # fmt: skip
        """The conditional status write; a claimed one is retried through a DynamoDB fault
        while the worker runs."""
        assert held.fields is not None
        if claim is None:
            try:
                return await self._store.record_without_call(held.fields, outcome)
            except Exception as exc:
                return self._store_failed(held, exc, "record")
        tries = 0
        while True:
            tries += 1
            try:
                return await self._store.write_outcome(claim, held.fields, outcome, calls)
            except Exception as exc:
                if not is_unavailable(exc) or self._stopping.is_set():
                    return self._store_failed(held, exc, "finish")
                await asyncio.sleep(compute_backoff_s(tries, 0.1, 5.0))

    def _store_failed(self, held: HeldMessage, exc: Exception, op: str) -> HandBack:
        back = d.store_failed(self._context(held), self._s.visibility_timeout_s, held.claim)
        self._emit(d.Kind.STORE_UNAVAILABLE, held, op=op, error=describe(exc),
                   visible_in_s=back.delay_s)  # fmt: skip
        return back

    async def exhaust(self, held: HeldMessage, reason: str) -> HandBack | None:
        if held.fields is None:
            return HandBack(0, reason)
        step = d.exhausted(self._context(held), reason)
        return await self._carry_out(held, step, held.claim)

    def abandon(self) -> None:
        self._sent_writer.abandon()  # SENT records still held: their conclusions end at once

    def unsettled(self, held: HeldMessage) -> None:
        self._emit(d.Kind.UNSETTLED, held, phase=held.phase.value)

    def _on_cancel(self, held: HeldMessage) -> None:
        if held.settled or self.orphan(held):
            return
        if held.phase is Phase.WAITING:
            return self.hand_back(held, 0, "shutdown")
        claim, progress = held.claim, held.progress
        if claim is None or held.fields is None:
            # Cancelled inside the claim call: it may have been written, so the lease may
            # stand; the message comes back when it has passed.
            return self.hand_back(held, math.ceil(self._s.lease_s), "shutdown")
        if progress.in_call:
            # The provider may have accepted it: keep the claim (its lease stops other
            # workers) and hand the message back for when the lease has passed.
            log.warning("abandoned_in_call", attempt=claim.attempts_after(progress.calls))
            lease_left_s = (claim.lease_until_ms - time.time() * 1000) / 1000
            return self.hand_back(held, max(1, math.ceil(lease_left_s) + 1), "abandoned_in_call")
        error = progress.last_error or SendError(
            ErrorKind.TRANSIENT, "SHUTDOWN", None, "worker stopped between retries"
        )
        result = SendResult(None, error, progress.calls, 0.0)
        step = d.send_failed(self._context(held), error)
        self.start_conclusion(held, self._carry_out(held, step, claim, result), awaited=False)
