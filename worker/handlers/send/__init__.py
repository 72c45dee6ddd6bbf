"""The send handler: one send request from the queue to the provider and the status table.

:func:`build` opens what it needs (the status store, the SENT writer, the campaign counters,
the sender) on the runtime's exit stack and wires the outcome listeners.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.handlers import HandlerContext
    from worker.handlers.send.handler import SendHandler


async def build(ctx: HandlerContext) -> SendHandler:
    from worker.handlers.send.events import (
        CountersListener,
        Listener,
        Listeners,
        LogListener,
        MetricsListener,
    )
    from worker.handlers.send.handler import SendHandler
    from worker.sending.sender import Sender
    from worker.status.counters import CampaignCounters, CountersFlushError
    from worker.status.sent_writer import SentWriter
    from worker.status.store import StatusStore

    s = ctx.settings
    store = StatusStore(
        ctx.hot.dynamodb, s.table, lease_s=s.lease_s, ttl_days=s.record_ttl_days, health=ctx.health
    )
    listeners: list[Listener] = [MetricsListener(ctx.metrics), LogListener(), *ctx.listeners]
    if s.campaign_counters_flush_s > 0:
        counters = CampaignCounters(
            ctx.hot.dynamodb,  # every worker writes each campaign's counters every period
            s.table,
            s.campaign_counters_flush_s,
            ttl_days=s.record_ttl_days,
        )
        counters.start()

        async def close_counters() -> None:
            # A failed final flush is logged by the counters, not fatal: the per-request
            # records stay authoritative.
            with suppress(CountersFlushError):
                await counters.close()

        ctx.stack.push_async_callback(close_counters)
        listeners.append(CountersListener(counters))
    sent_writer = SentWriter(ctx.hot.dynamodb, s.table, health=ctx.health)
    await ctx.stack.enter_async_context(sent_writer)
    sender = Sender(ctx.hot.sms, ctx.limiter, s, ctx.metrics, health=ctx.health)
    return SendHandler(
        settings=s,
        store=store,
        sent_writer=sent_writer,
        sender=sender,
        limiter=ctx.limiter,
        cooldown=ctx.cooldown,
        health=ctx.health,
        listeners=Listeners(*listeners),
        stopping=ctx.stopping,
        acks=ctx.acks,
        extender=ctx.extender,
        max_receive_count=ctx.max_receive_count,
    )
