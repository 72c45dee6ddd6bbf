"""The send handler: parse -> (expire) -> rate -> claim -> send -> record.

The flow only: what to do at each step is :mod:`worker.handlers.send.decide`'s, doing it is
:mod:`worker.handlers.send.executor`'s, observers hear one outcome event each
(:mod:`worker.handlers.send.events`), and the held-message invariant is
:class:`worker.handlers.held.Holding`'s. The final status write and its acknowledgement run
shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import structlog

from worker.handlers.held import HandBack, HeldMessage, Phase
from worker.handlers.send import decide as d
from worker.handlers.send.executor import DecisionExecutor
from worker.health import DYNAMODB, SMS
from worker.masking import mask_identity
from worker.model import InvalidRequest, parse_request
from worker.sending.limiter import Limiter
from worker.sending.sender import Sender, SendProgress, SendResult
from worker.status.model import ClaimRefused

KEEP_RETRY_MAX_S = 5.0  # on the last receive, a hand-back is retried in the task this soon
#: At most this share of max_in_flight is kept for a paused channel on its last receive; the
#: rest is recorded FAILED/RETRIES_EXHAUSTED (CHANNEL_PAUSED) and dead-lettered, replayable with
#: `sms-worker dlq replay`, so a long spend-limit pause cannot take every slot from the other
#: channel.
KEEP_PAUSED_SHARE = 0.25
_WAITS_FOR = {"store_unavailable": DYNAMODB, "sms_unavailable": SMS}


class SendHandler(DecisionExecutor):
    """The handler of the send-request queue (registered as ``send``)."""

    def __init__(self, *, sender: Sender, limiter: Limiter, **executor: Any) -> None:
        super().__init__(**executor)
        self._sender, self._limiter = sender, limiter
        self._kept_paused = 0  # messages kept in their task for a paused channel
        self._kept_paused_max = max(1, int(self._s.max_in_flight * KEEP_PAUSED_SHARE))

    async def handle(self, held: HeldMessage) -> None:
        msg = held.message
        structlog.contextvars.bind_contextvars(
            sqs_message_id=msg.message_id, receive_count=msg.receive_count
        )
        try:
            while (back := await self._attempt(held)) is not None and not held.settled:
                paused = back.reason == "channel_paused"
                if (
                    not self.last_receive(msg)
                    or self._stopping.is_set()
                    or (paused and self._kept_paused >= self._kept_paused_max)
                ):
                    # On the last receive this records the final status before the DLQ.
                    return self.hand_back(held, back.delay_s, back.reason)
                # A hand-back now would move the message to the DLQ with no final status.
                wait_s = min(float(back.delay_s), KEEP_RETRY_MAX_S)
                self._emit(d.Kind.KEPT, held, reason=back.reason, retry_in_s=wait_s)
                self._kept_paused += paused
                try:
                    await self._keep_waiting(back.reason, wait_s)
                finally:
                    self._kept_paused -= paused
                held.phase, held.claim, held.progress = Phase.WAITING, None, SendProgress()
        except asyncio.CancelledError:
            self._on_cancel(held)
            raise
        finally:
            self.ensure_settled(held)

    async def _keep_waiting(self, reason: str, wait_s: float) -> None:
        dependency = _WAITS_FOR.get(reason)
        if dependency is not None and self._health.failing(dependency):
            await self._health.wait_recovered(dependency, wait_s)
        else:
            await asyncio.sleep(wait_s)

    async def _attempt(self, held: HeldMessage) -> HandBack | None:
        msg = held.message
        if self._stopping.is_set():
            return HandBack(0, "shutdown")
        parsed = parse_request(msg.body, sqs_message_id=msg.message_id)
        held.fields = d.record_fields(parsed, msg.message_id, msg.receive_count)
        structlog.contextvars.bind_contextvars(request_id=held.fields.request_id)
        ctx = self._context(held)
        step = d.decide(ctx, parsed)
        if isinstance(step, d.Decision):
            return await self.shielded(held, self._carry_out(held, step))
        assert not isinstance(parsed, InvalidRequest)
        identity, parts = parsed.rate_key, parsed.parts  # an SMS reserves one token per part
        structlog.contextvars.bind_contextvars(identity=mask_identity(identity))
        wait_s = self._limiter.next_wait_s(identity, parts)
        max_wait_s = self._s.max_token_wait_s
        pause_s = self._cooldown.channels[parsed.channel.name].admit()  # 0: send (or probe)
        gate = d.before_claim(ctx, wait_s, max_wait_s, random.random(), pause_s)  # none awaited
        if gate is None:
            await self._limiter.reserve(identity, parts)
            gate = d.before_claim(self._context(held), 0.0, max_wait_s, 0.0)
        if gate is not None:
            assert isinstance(gate.ack, HandBack)
            self._emit(gate.kind, held, wait_s=round(wait_s, 1), visible_in_s=gate.ack.delay_s)
            return gate.ack
        # From the claim on, a shutdown lets this request finish (within the grace period):
        # a claim cut short would leave a live lease.
        held.phase = Phase.SENDING
        lease_deadline = time.monotonic() + self._s.lease_s  # taken before the claim is made
        try:
            claimed = await self._store.claim(held.fields)
        except Exception as exc:
            return self._store_failed(held, exc, "claim")
        if isinstance(claimed, ClaimRefused):
            return await self._carry_out(held, d.refused(self._context(held), claimed))
        held.claim = claimed
        self._emit(d.Kind.CLAIMED, held, attempt=claimed.attempts, reopened=claimed.reopened)
        held_back = d.reclaim(self._context(held), claimed)
        if held_back is not None:  # an ambiguous earlier send: no call now (reclaim policy)
            no_call = SendResult(None, None, 0, 0.0)
            return await self.shielded(held, self._carry_out(held, held_back, claimed, no_call))
        params = parsed.api_params(self._s.default_configuration_set)
        result = await self._sender.send(params, identity, first_token_held=True,
            progress=held.progress, deadline=lease_deadline, channel=parsed.channel,
            tokens=parts)  # fmt: skip
        step = d.decide(self._context(held), parsed, claimed, result)
        assert isinstance(step, d.Decision)
        return await self.shielded(held, self._carry_out(held, step, claimed, result))
