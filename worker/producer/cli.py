"""``sms-worker enqueue FILE``: validate a CSV or JSON-lines file of send requests, then put
them on the queue.

Two streaming passes: the first validates every row with the worker's own model and reports
the bad ones by line; only then, and only if none is bad (or ``--skip-invalid``), the second
enqueues the valid rows. Exit codes: 0 all enqueued, 1 invalid rows (without
``--skip-invalid``) or rows not enqueued, 2 unusable options or file, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from worker.producer.check import RowProblem, Scan, campaign_id_problem, checked_rows, scan_file
from worker.producer.files import (
    Format,
    InputFileError,
    detect_format,
    file_size,
    file_version,
)
from worker.producer.outcomes import EntryFailure, QueueUnavailable
from worker.producer.progress import Progress, make_progress
from worker.producer.report import (
    Summary,
    interrupted,
    invalid_rows,
    no_request_ids,
    not_enqueued,
    stopped,
)
from worker.producer.schema import schema_text

PROG = "sms-worker enqueue"
MAX_CONCURRENCY = 100


def register(commands: Any) -> None:
    """Add ``enqueue`` to ``sms-worker``'s subparsers."""
    parser = commands.add_parser(
        "enqueue",
        help="validate a .csv or .jsonl file of send requests and put them on the queue",
        description=(
            "Validate every row of FILE with the worker's own request model, report the bad "
            "ones by line, then (only if none is bad, or with --skip-invalid) enqueue the "
            "valid rows with SendMessageBatch. CSV: a header row of contract keys; MediaUrls "
            "is one URL; Context.<key> columns fold into Context (at most 4: the worker adds "
            "its own 'sms-worker:RequestId' entry, which a request may not set); an empty cell "
            "is an absent key; TimeToLive is an integer, DryRun and MessageFeedbackEnabled "
            "true/false. "
            "JSONL: one JSON object per line. AWS endpoints and credentials come from the "
            "standard AWS chain (AWS_PROFILE, AWS_ENDPOINT_URL_SQS, ...). Exit codes: 0 all "
            "enqueued, 1 invalid rows or rows not enqueued, 2 bad options or file."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help=".csv or .jsonl file")
    parser.add_argument(
        "--queue-url",
        default=env.get("SMS_WORKER_QUEUE_URL"),
        help="URL of the queue [SMS_WORKER_QUEUE_URL]",
    )
    parser.add_argument(
        "--region",
        default=env.get("SMS_WORKER_REGION") or env.get("AWS_REGION"),
        help="AWS region [SMS_WORKER_REGION, AWS_REGION; else the queue URL's, else botocore's]",
    )
    parser.add_argument(
        "--campaign-id",
        help="CampaignId for rows that have none; rows without a RequestId get "
        "'<campaign-id>-<line>', so enqueueing the same file again sends nothing twice",
    )
    parser.add_argument(
        "--table",
        default=env.get("SMS_WORKER_TABLE"),
        help="status table: with --campaign-id, the rows enqueued are recorded as the "
        "campaign's expected total, so 'sms-worker campaign --watch' knows when it is done; "
        "the same file enqueued again adds nothing [SMS_WORKER_TABLE]",
    )
    parser.add_argument(
        "--no-expected-total",
        action="store_true",
        help="with --campaign-id, do not record the expected total (no --table needed)",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="enqueue the valid rows even if some are invalid (they are still reported)",
    )
    parser.add_argument(
        "--validate-only", action="store_true", help="validate the file, enqueue nothing"
    )
    parser.add_argument("--format", choices=["csv", "jsonl"], help="default: from the extension")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="batches sent at once (default: 8)"
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="calls per batch entry before it is reported as failed (default: 5)",
    )
    parser.add_argument(
        "--show-errors",
        type=int,
        default=100,
        metavar="N",
        help="report at most N invalid and N failed rows (default: 100; all are counted)",
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "bar", "plain", "none"],
        default="auto",
        help="auto: a bar on a terminal, a plain line otherwise (to stderr)",
    )
    parser.add_argument(
        "--progress-interval-s",
        type=float,
        default=5.0,
        help="seconds between plain progress lines (default: 5)",
    )
    parser.add_argument(
        "--print-schema",
        action="store_true",
        help="print the JSON Schema of a request body and exit",
    )


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.file is None:
        return "FILE is required (a .csv or .jsonl file of send requests)"
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        return f"--concurrency must be 1..{MAX_CONCURRENCY}, got {args.concurrency}"
    if args.max_attempts < 1:
        return f"--max-attempts must be at least 1, got {args.max_attempts}"
    if args.show_errors < 0:
        return f"--show-errors must be 0 or more, got {args.show_errors}"
    if args.campaign_id is not None:
        problem = campaign_id_problem(args.campaign_id)
        if problem:
            return problem
    if not args.validate_only and not args.queue_url:
        return "no queue: pass --queue-url or set SMS_WORKER_QUEUE_URL"
    if args.campaign_id and not (args.table or args.validate_only or args.no_expected_total):
        return (
            "--campaign-id records the campaign's expected total in the status table: pass "
            "--table NAME or set SMS_WORKER_TABLE (or --no-expected-total to skip it)"
        )
    return None


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _fail(message: str, code: int) -> int:
    _say(message)
    return code


def run(args: argparse.Namespace) -> int:
    """The handler of ``sms-worker enqueue``; returns the exit code."""
    if args.print_schema:
        sys.stdout.write(schema_text())
        return 0
    problem = _usage_problem(args)
    if problem:
        return _fail(f"{problem}; see '{PROG} --help'", 2)
    summary = Summary(skipped=args.skip_invalid)
    progress = make_progress(args.progress, sys.stderr, args.progress_interval_s)
    try:
        fmt = detect_format(args.file, args.format)
        scan = _validate(args, fmt, progress, summary)
        code = _after_validation(args, scan)
        if code is None:
            code = asyncio.run(_enqueue(args, fmt, scan, progress, summary))
    except InputFileError as exc:
        progress.finish()
        return _fail(f"{exc}\nNothing was enqueued.", 2)
    except KeyboardInterrupt:
        progress.finish()
        print(summary.render(), flush=True)
        return _fail(interrupted(summary), 130)
    print(summary.render(), flush=True)
    return code


def _validate(args: argparse.Namespace, fmt: Format, progress: Progress, summary: Summary) -> Scan:
    shown = 0

    def report(problem: RowProblem) -> None:
        nonlocal shown
        if shown < args.show_errors:
            shown += 1
            progress.message(f"invalid: {problem}")

    started = time.monotonic()
    size = file_size(args.file)
    args.file_version = file_version(args.file)
    progress.start("validating", size, "bytes")
    scan = scan_file(
        args.file, fmt, campaign_id=args.campaign_id, on_bytes=progress.advance, on_problem=report
    )
    progress.finish()
    summary.rows, summary.invalid = scan.rows, scan.invalid
    summary.validating_s = time.monotonic() - started
    if scan.invalid > shown:
        progress.message(
            f"invalid: {scan.invalid - shown:,} more rows not shown (--show-errors N shows more)"
        )
    return scan


def _after_validation(args: argparse.Namespace, scan: Scan) -> int | None:
    """The exit code when there is nothing to send, or None to go on and send."""
    if scan.invalid and not (args.skip_invalid and not args.validate_only):
        return _fail(invalid_rows(scan, args.validate_only), 1)
    if scan.without_request_id:
        _say(no_request_ids(scan))
    if args.validate_only or scan.valid == 0:
        return 0
    return None


async def _enqueue(
    args: argparse.Namespace, fmt: Format, scan: Scan, progress: Progress, summary: Summary
) -> int:
    from worker.producer.api import Enqueuer  # aiobotocore: imported only to send
    from worker.producer.batch import RetryPolicy
    from worker.producer.expected import ExpectedTotal, TotalNotRecorded

    shown = 0

    def sent(count: int) -> None:
        summary.enqueued += count
        progress.advance(count)

    def failed(failure: EntryFailure) -> None:
        nonlocal shown
        summary.failed += 1
        if shown < args.show_errors and not failure.stopped:  # the error says it all
            shown += 1
            progress.message(
                f"not enqueued: line {failure.tag}: {failure.code}: {failure.message} "
                f"(after {failure.attempts} call(s))"
            )

    if file_version(args.file) != args.file_version:
        raise InputFileError(
            f"{args.file} changed after it was validated; run the command again once the file "
            "is complete"
        )
    total = ExpectedTotal.of(args, scan.digest, scan.valid)
    try:
        if total is not None:
            await total.begin(scan.valid)  # first: a wrong table stops the run here
    except TotalNotRecorded as exc:
        return _fail(f"{exc}\nNothing was enqueued.", 1)
    started = time.monotonic()
    retry = RetryPolicy(max_attempts=args.max_attempts)
    progress.start("enqueueing", scan.valid, "rows")
    enqueuer = Enqueuer(
        args.queue_url,
        region_name=args.region,
        concurrency=args.concurrency,
        retry=retry,
        on_sent=sent,
        on_failure=failed,
    )
    error: QueueUnavailable | InputFileError | TotalNotRecorded | None = None
    try:
        async with enqueuer:
            for row in checked_rows(args.file, fmt, campaign_id=args.campaign_id):
                if not isinstance(row, RowProblem):  # reported by the validation pass
                    await enqueuer.put(row.prepared, tag=row.line)
    except (QueueUnavailable, InputFileError) as exc:  # the file: changed while being read
        error = exc
    finally:  # also on Ctrl-C: the expected total is what was enqueued
        progress.finish()
        summary.enqueueing_s = time.monotonic() - started
        if total is not None:
            try:
                await total.end(summary.enqueued)
            except TotalNotRecorded as exc:
                error = error or exc
    if error is not None:
        summary.failed = scan.valid - summary.enqueued
        return _fail(f"{error}\n{stopped(summary, scan)}", 1)
    if summary.failed:
        return _fail(not_enqueued(summary, scan), 1)
    return 0
