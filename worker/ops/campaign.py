"""``sms-worker campaign CAMPAIGN_ID``: a campaign's progress from its counter item.

One GetItem per read, each bounded by ``--timeout``. ``--watch`` reads every ``--interval-s``
and shows the rates over the last few reads (up to ``RATE_WINDOW_READS`` intervals), until
every expected request is done, Ctrl-C, or (for a campaign with no counter item at all)
``--wait-s``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

from worker.ops.common import (
    OpsError,
    add_region_option,
    add_table_option,
    add_timeout_option,
    aws_client,
    bounded,
    fail,
    require_table,
    run_command,
    seconds_between,
)
from worker.ops.progress import compute_progress, format_block, format_line
from worker.status.counters import CampaignProgress, check_campaign_id, read_campaign

RATE_WINDOW_READS = 5
DEFAULT_WAIT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("campaign_id", metavar="CAMPAIGN_ID", help="the requests' CampaignId")
    add_table_option(parser)
    add_region_option(parser)
    add_timeout_option(parser)
    parser.add_argument(
        "--watch",
        action="store_true",
        help="refresh until every expected request is done, or Ctrl-C",
    )
    parser.add_argument(
        "--interval-s",
        type=seconds_between(0.1, 3600),
        default=2.0,
        metavar="S",
        help="seconds between reads with --watch [default: 2]",
    )
    parser.add_argument(
        "--wait-s",
        type=seconds_between(0.1, 3600),
        default=DEFAULT_WAIT_S,
        metavar="S",
        help="with --watch: give up (exit 1) on a campaign that still has no counter item "
        f"after S seconds [default: {DEFAULT_WAIT_S:g}]",
    )


def _age_s(progress: CampaignProgress) -> float | None:
    if progress.updated_at is None:
        return None
    return max(0.0, (datetime.now(UTC) - progress.updated_at).total_seconds())


def _not_found(campaign_id: str, table: str) -> str:
    return (
        f"no counters for campaign {campaign_id!r} in table {table!r}: either none of its "
        "requests has reached a final status yet (workers flush their counts every second), "
        "or the CampaignId is different (it is case-sensitive), or the workers do not record "
        "campaign counters. Use --watch to wait for the first counts, or 'sms-worker status "
        "REQUEST_ID' to look at one request."
    )


def _gave_up(campaign_id: str, table: str, wait_s: float) -> str:
    return (
        f"no counters for campaign {campaign_id!r} in table {table!r} after {wait_s:g}s: "
        "check the CampaignId (it is case-sensitive) and the table; a campaign enqueued with "
        "'sms-worker enqueue --campaign-id ID --table TABLE' has counters as soon as the "
        "enqueue starts, others once a worker finishes one of its requests (--wait-s S "
        "waits longer)"
    )


async def _once(ddb: Any, table: str, campaign_id: str, timeout_s: float) -> int:
    progress = await bounded(read_campaign(ddb, table, campaign_id), ddb, timeout_s)
    if not progress.found:
        return fail(_not_found(campaign_id, table))
    print(format_block(progress, compute_progress(progress), age_s=_age_s(progress)))
    return 0


def _live_display() -> Any:
    """rich's Live display on a terminal; None (plain lines) otherwise."""
    if not sys.stdout.isatty():
        return None
    try:
        from rich.live import Live
    except ImportError:  # rich is optional: fall back to a line per refresh
        return None
    return Live(auto_refresh=False, transient=False)


async def _watch(ddb: Any, table: str, args: argparse.Namespace) -> int:
    campaign_id, interval_s = args.campaign_id, args.interval_s
    give_up_at = time.monotonic() + args.wait_s
    live = _live_display()
    reads: deque[tuple[float, CampaignProgress]] = deque(maxlen=RATE_WINDOW_READS + 1)
    context: AbstractContextManager[Any] = live if live is not None else nullcontext()
    with context:
        while True:
            progress = await bounded(read_campaign(ddb, table, campaign_id), ddb, args.timeout)
            now = time.monotonic()
            if reads:
                first_at, first = reads[0]
                view = compute_progress(progress, first, now - first_at)
            else:
                view = compute_progress(progress)
            reads.append((now, progress))
            if not progress.found and now >= give_up_at:
                return fail(_gave_up(campaign_id, table, args.wait_s))
            if not progress.found:
                text = f"{campaign_id}: no counts yet; waiting for the first (Ctrl-C to stop)"
            elif live is not None:
                text = format_block(progress, view, age_s=_age_s(progress))
            else:
                text = format_line(progress, view)
            if live is not None:
                from rich.text import Text

                live.update(Text(text), refresh=True)
            else:
                print(text, flush=True)
            if progress.found and view.finished:
                return 0
            await asyncio.sleep(interval_s)


async def _campaign(args: argparse.Namespace, table: str) -> int:
    async with aws_client("dynamodb", args.region, args.timeout) as ddb:
        if args.watch:
            return await _watch(ddb, table, args)
        return await _once(ddb, table, args.campaign_id, args.timeout)


def handle(args: argparse.Namespace) -> int:
    try:
        table = require_table(args)
        check_campaign_id(args.campaign_id)
    except OpsError as exc:
        return fail(str(exc), exc.exit_code)
    except ValueError as exc:
        return fail(str(exc), 2)
    try:
        return run_command(_campaign(args, table), table=table)
    except KeyboardInterrupt:  # Ctrl-C ends --watch; not an error
        return 0
