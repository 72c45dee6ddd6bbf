"""``sms-worker dlq [replay]``: what the dead-letter queue holds, and moving it back.

``dlq`` lists each dead letter with its record's status and reason (one ``BatchGetItem`` per
batch of ten; phone numbers, bodies and ``Context`` never printed). ``dlq replay`` sends the
matching ones to the source queue again, where a worker claims a ``FAILED``/``RETRIES_EXHAUSTED``
request and sends it (docs/operating.md, "Dead letters"): ``SendMessageBatch`` to the source
queue first, then ``DeleteMessageBatch`` of exactly the entries that were sent, so a failure
never loses a message (at worst one is in both queues; the worker skips the second copy).

Messages are read with ``ReceiveMessage`` and kept invisible while the command runs (so each is
seen once); those not moved are made visible again at the end. The dead-letter queue is found
from the source queue's ``RedrivePolicy`` unless ``--dlq-url`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from worker.masking import mask_text
from worker.ops.common import (
    OpsError,
    add_region_option,
    add_table_option,
    aws_client,
    fail,
    require_table,
    run_command,
    say,
)
from worker.ops.dlq_queue import DeadLetter, DeadLetters, fetch_records, find_dlq
from worker.status.model import is_duplicate

QUEUE_ENV = "SMS_WORKER_QUEUE_URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    sub = parser.add_subparsers(dest="dlq_command", metavar="replay")
    replay = sub.add_parser(
        "replay",
        help="move dead letters back to the source queue",
        description="Move the dead letters that match back to the source queue (send, then "
        "delete from the dead-letter queue). By default only those a worker would send: no "
        "record, not final, or FAILED/RETRIES_EXHAUSTED; --include-final moves the others too "
        "(a worker then deletes them as duplicates). Exit 1 if any could not be moved.",
    )
    _common(replay)
    replay.add_argument("--campaign-id", metavar="C", help="only this campaign's requests")
    replay.add_argument(
        "--error-code",
        metavar="E",
        help="only records whose ErrorCode or ErrorReason is E (RETRIES_EXHAUSTED, or the "
        "last error, e.g. EndpointConnectionError)",
    )
    replay.add_argument(
        "--include-final",
        action="store_true",
        help="also move SENT, EXPIRED and permanently FAILED requests (the worker skips them)",
    )
    replay.add_argument("--dry-run", action="store_true", help="say what would move; move none")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue-url",
        default=os.environ.get(QUEUE_ENV) or None,
        help=f"the source queue (its RedrivePolicy names the DLQ) [default: {QUEUE_ENV}]",
    )
    parser.add_argument("--dlq-url", help="the dead-letter queue [default: from the policy]")
    add_table_option(parser)
    add_region_option(parser)
    parser.add_argument(
        "--max", type=int, default=None, metavar="N", help="look at N dead letters at most"
    )


@dataclass
class Counts:
    seen: int = 0
    moved: int = 0
    skipped: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # why skipped

    def skip(self, why: str) -> None:
        self.skipped += 1
        self.reasons[why] = self.reasons.get(why, 0) + 1

    def line(self) -> str:
        return f"seen {self.seen}, moved {self.moved}, skipped {self.skipped}, failed {self.failed}"


def describe(letter: DeadLetter) -> dict[str, Any]:
    """What may be shown of a dead letter: ids, status and reason, never personal data."""
    record = letter.record or {}
    shown: dict[str, Any] = {
        "RequestId": letter.request_id,
        "Status": record.get("Status") or "NO_RECORD",
        "ErrorCode": record.get("ErrorCode"),
        "ErrorReason": record.get("ErrorReason"),
        "CampaignId": record.get("CampaignId") or letter.campaign_id,
        "Replays": record.get("Replays", 0),
        "Attempts": record.get("Attempts"),
        "DlqReceives": letter.receive_count,
        "SqsMessageId": letter.message_id,
        "Replayable": would_send(letter),
    }
    return {
        k: mask_text(v, bare_digits=True) if isinstance(v, str) else v
        for k, v in shown.items()
        if v is not None
    }


def would_send(letter: DeadLetter) -> bool:
    """Would a worker send this request if its message came back?"""
    record = letter.record
    return record is None or not is_duplicate(record.get("Status"), record.get("ErrorCode"))


def why_skipped(letter: DeadLetter, args: argparse.Namespace) -> str | None:
    record = letter.record or {}
    if args.campaign_id and (record.get("CampaignId") or letter.campaign_id) != args.campaign_id:
        return "other campaign"
    codes = {record.get("ErrorCode"), record.get("ErrorReason")}
    if args.error_code and args.error_code not in codes:
        return "other error code"
    if not args.include_final and not would_send(letter):
        return f"final ({record.get('Status')}/{record.get('ErrorCode') or '-'})"
    return None


def _row(item: dict[str, Any]) -> str:
    reason = "/".join(str(item[k]) for k in ("ErrorCode", "ErrorReason") if k in item) or "-"
    return (
        f"{item['RequestId']:<36} {item['Status']:<9} {reason:<48} "
        f"replays={item['Replays']} campaign={item.get('CampaignId', '-')}"
    )


async def _run(args: argparse.Namespace, table: str) -> int:
    replay = args.dlq_command == "replay"
    if args.max is not None and args.max < 1:
        raise OpsError("--max must be at least 1", exit_code=2)
    async with aws_client("sqs", args.region) as sqs, aws_client("dynamodb", args.region) as ddb:
        source, dlq = await find_dlq(sqs, args.queue_url, args.dlq_url, needs_source=replay)
        counts = Counts()
        letters = DeadLetters(sqs, dlq, limit=args.max)
        last_progress = time.monotonic()
        try:
            async for batch in letters.batches():
                await fetch_records(ddb, table, batch)
                counts.seen += len(batch)
                if not replay:
                    for letter in batch:
                        item = describe(letter)
                        print(json.dumps(item, sort_keys=True) if args.json else _row(item))
                    continue
                await _replay_batch(args, letters, source, batch, counts)
                if time.monotonic() - last_progress >= 1.0:
                    print(f"dlq replay: {counts.line()}", file=sys.stderr, flush=True)
                    last_progress = time.monotonic()
        finally:
            await letters.release_kept()  # what was not moved is visible again
    if not replay:
        print(f"{counts.seen} dead letter(s) in {dlq}", file=sys.stderr)
        return 0
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {counts.moved}, skipped {counts.skipped}, failed {counts.failed} "
        f"(of {counts.seen} in {dlq})"
    )
    for why, n in sorted(counts.reasons.items()):
        print(f"  skipped {n}: {why}")
    return 1 if counts.failed else 0


async def _replay_batch(
    args: argparse.Namespace,
    letters: DeadLetters,
    source: str,
    batch: list[DeadLetter],
    counts: Counts,
) -> None:
    chosen: list[DeadLetter] = []
    for letter in batch:
        why = why_skipped(letter, args)
        if why is None:
            chosen.append(letter)
        else:
            counts.skip(why)
    if args.dry_run:
        for letter in chosen:
            print(f"would move  {_row(describe(letter))}")
        counts.moved += len(chosen)
        return
    moved, failures = await letters.move(chosen, source)
    counts.moved += moved
    counts.failed += len(failures)
    for request_id, error in failures:
        say(f"{request_id}: {error}")


def handle(args: argparse.Namespace) -> int:
    try:
        table = require_table(args)
    except OpsError as exc:
        return fail(str(exc), exc.exit_code)
    return run_command(_run(args, table), table=table)
