"""The events handler: parse -> apply -> acknowledge, each message in its own task.

The decisions are :mod:`worker.handlers.events.decide`'s; the write is
:class:`worker.status.delivery.DeliveryWriter`'s; the held-message invariant is
:class:`worker.handlers.held.Holding`'s. A write is idempotent, so a cancelled one is simply
handed back and applied again later.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import structlog

from worker.aws.errors import describe
from worker.handlers.events import decide as d
from worker.handlers.events.parse import Malformed, NotOurs, Parsed, parse_event
from worker.handlers.held import Delete, HandBack, HeldMessage, Holding, Release
from worker.logs import get_logger
from worker.metrics import Metrics
from worker.settings import Settings
from worker.status.counters import CampaignCounters
from worker.status.delivery import DeliveryEvent, DeliveryWriter, apply_event
from worker.status.model import DeliveryStatus

log = get_logger("worker.handlers.events")


class EventsHandler(Holding):
    """The handler of the delivery-events queue (registered as ``events``)."""

    def __init__(self, *, writer: DeliveryWriter, counters: CampaignCounters | None,
                 metrics: Metrics, settings: Settings, **holding: Any) -> None:  # fmt: skip
        super().__init__(**holding)
        self._writer, self._counters, self._metrics, self._s = writer, counters, metrics, settings

    def _context(self, held: HeldMessage) -> d.Context:
        s = self._s
        return d.Context(
            held.message.receive_count,
            self.max_receive_count,
            s.redelivery_base_delay_s,
            s.redelivery_max_delay_s,
            s.visibility_timeout_s,
        )

    async def handle(self, held: HeldMessage) -> None:
        msg = held.message
        structlog.contextvars.bind_contextvars(
            sqs_message_id=msg.message_id, receive_count=msg.receive_count
        )
        try:
            parsed = parse_event(msg.body)
            self._metrics.events[_type_label(parsed)] += 1
            step = d.on_parse(parsed)
            if step is None:
                assert isinstance(parsed, Parsed)
                step = await self._apply(held, parsed.event)
            else:
                self._observe(step, parsed)
            self._acknowledge(held, step)
        except asyncio.CancelledError:  # a shutdown: the write is idempotent, so at once
            self.hand_back(held, 0, "shutdown")
            raise
        finally:
            self.ensure_settled(held)

    async def _apply(self, held: HeldMessage, event: DeliveryEvent) -> d.Decision:
        structlog.contextvars.bind_contextvars(request_id=event.request_id)
        ctx = self._context(held)
        try:
            result = await self._writer.apply(event)
        except Exception as exc:
            step = d.store_failed(ctx)
            self._metrics.event_outcomes[step.kind] += 1
            log.warning("delivery_event_unwritten", error=describe(exc),
                        effect="the event is delivered again and applied then")  # fmt: skip
            return step
        step = d.on_apply(ctx, result)
        self._metrics.event_outcomes[step.kind] += 1
        if step.kind in (d.Kind.APPLIED, d.Kind.PROVEN, d.Kind.STALE) and result.before:
            after = apply_event(result.before, event)
            if after is not None and after != result.before:
                if self._counters is not None:
                    self._counters.delivery(result.before, after)
                if event.status is DeliveryStatus.DELIVERED:
                    self._observe_latency(after, event)
        fields = {"event_type": event.event_type, "outcome": str(step.kind)}
        if step.kind is d.Kind.PROVEN:
            log.info("delivery_event_proved_send", was=result.before.get("Status"),
                     message_id=event.message_id, **fields)  # fmt: skip
        elif step.kind is d.Kind.GAVE_UP:
            log.warning(
                "delivery_event_no_record",
                receives=held.message.receive_count,
                effect="deleted: no record of this request in the table",
                **fields,
            )
        else:
            log.debug("delivery_event", **fields)
        return step

    def _observe_latency(self, after: dict[str, Any], event: DeliveryEvent) -> None:
        sent_at = after.get("SentAt")
        if not isinstance(sent_at, str):
            return
        try:
            sent_ms = datetime.fromisoformat(sent_at).timestamp() * 1000
        except ValueError:
            return
        self._metrics.delivery_latency_s.observe(max(0.0, (event.timestamp_ms - sent_ms) / 1000))

    def _observe(self, step: d.Decision, parsed: Malformed | NotOurs | Parsed) -> None:
        self._metrics.event_outcomes[step.kind] += 1
        if isinstance(parsed, Malformed):
            # The problem's text names no value from the body (parse.Malformed).
            log.warning("delivery_event_malformed", problem=parsed.problem,
                        envelope=parsed.envelope, effect="deleted")  # fmt: skip
        elif isinstance(parsed, NotOurs):
            log.info(
                "delivery_event_not_ours",
                event_type=parsed.event_type,
                envelope=parsed.envelope,
                effect="deleted: no sms-worker:RequestId in its context",
            )

    def _acknowledge(self, held: HeldMessage, step: d.Decision) -> None:
        if isinstance(step.ack, Delete):
            self.delete(held)
        elif isinstance(step.ack, Release):
            self.release(held, step.ack.visible_in_s)
        elif isinstance(step.ack, HandBack):
            self.hand_back(held, step.ack.delay_s, step.ack.reason)


def _type_label(parsed: Parsed | NotOurs | Malformed) -> str:
    if isinstance(parsed, Parsed):
        return parsed.event.event_type
    if isinstance(parsed, NotOurs):
        return parsed.event_type
    return "none"
