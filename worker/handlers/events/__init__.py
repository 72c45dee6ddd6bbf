"""The delivery-events handler: one End User Messaging delivery event from the events queue
to its request's record (contract section 4).

:func:`build` opens what it needs on the runtime's exit stack: the table writer and the
campaign counters (delivered, undelivered, cost).
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.handlers import HandlerContext
    from worker.handlers.events.handler import EventsHandler


async def build(ctx: HandlerContext) -> EventsHandler:
    from worker.handlers.events.handler import EventsHandler
    from worker.status.counters import CampaignCounters, CountersFlushError
    from worker.status.delivery import DeliveryWriter
    from worker.status.table import ConditionalTable

    s = ctx.settings
    writer = DeliveryWriter(ConditionalTable(ctx.hot.dynamodb, s.table, ctx.health))
    counters = None
    if s.campaign_counters_flush_s > 0:
        counters = CampaignCounters(
            ctx.hot.dynamodb, s.table, s.campaign_counters_flush_s, ttl_days=s.record_ttl_days
        )
        counters.start()

        async def close_counters() -> None:
            with suppress(CountersFlushError):  # logged by the counters
                await counters.close()

        ctx.stack.push_async_callback(close_counters)
    return EventsHandler(
        writer=writer,
        counters=counters,
        metrics=ctx.metrics,
        settings=s,
        acks=ctx.acks,
        extender=ctx.extender,
        max_receive_count=ctx.max_receive_count,
        redelivery_base_delay_s=s.redelivery_base_delay_s,
    )
