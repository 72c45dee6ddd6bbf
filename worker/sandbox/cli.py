"""Command line of the sandbox: ``python -m worker.sandbox`` and ``sms-worker sandbox``.

Once listening, :func:`run` prints exactly one line to stdout (flushed)::

    {"event": "sandbox_ready", "url": "http://127.0.0.1:4599", "port": 4599}

and serves until SIGINT or SIGTERM. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

import structlog

from worker.logs import configure_logging
from worker.sandbox.config import (
    EVENT_ENVELOPES,
    EVENT_OUTCOMES,
    SandboxConfig,
    parse_list,
    parse_outcomes,
    parse_rates,
)
from worker.sandbox.server import start_sandbox

DEFAULT_PORT = 4599

log = structlog.get_logger("worker.sandbox")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options (all ``dest`` names start with ``sandbox_``)."""
    add = parser.add_argument
    add(
        "--host",
        dest="sandbox_host",
        metavar="HOST",
        default="127.0.0.1",
        help="Address to listen on.",
    )
    add(
        "--port",
        dest="sandbox_port",
        metavar="PORT",
        type=int,
        default=DEFAULT_PORT,
        help=f"Port to listen on; 0 picks a free one (default {DEFAULT_PORT}).",
    )
    add(
        "--mps",
        dest="sandbox_mps",
        metavar="MPS",
        type=float,
        default=None,
        help="Messages per second per origination identity (default: unlimited).",
    )
    add(
        "--rate",
        dest="sandbox_rate",
        action="append",
        default=[],
        metavar="IDENTITY=MPS",
        help="MPS of one identity; repeat or comma-separate, e.g. '+18005550100=3'.",
    )
    add(
        "--burst-s",
        dest="sandbox_burst_s",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="Token bucket depth in seconds of the identity's rate (at least 1 token).",
    )
    add(
        "--latency-ms",
        dest="sandbox_latency_ms",
        metavar="MS",
        type=float,
        default=0.0,
        help="Mean delay before each answer.",
    )
    add(
        "--latency-jitter-ms",
        dest="sandbox_latency_jitter_ms",
        metavar="MS",
        type=float,
        default=0.0,
        help="Uniform +/- jitter on the delay (never below 0).",
    )
    add(
        "--fault-rate",
        dest="sandbox_fault_rate",
        metavar="FRACTION",
        type=float,
        default=0.0,
        help="Fraction (0..1) of calls answered InternalServerException (HTTP 500).",
    )
    add(
        "--opted-out",
        dest="sandbox_opted_out",
        action="append",
        default=[],
        metavar="NUMBERS",
        help="Comma list of opted-out destinations (ConflictException).",
    )
    add(
        "--blocked-prefixes",
        dest="sandbox_blocked_prefixes",
        action="append",
        default=[],
        metavar="PREFIXES",
        help="Comma list of destination prefixes answered DESTINATION_COUNTRY_BLOCKED.",
    )
    add(
        "--known-identities",
        dest="sandbox_known_identities",
        action="append",
        default=None,
        metavar="IDS",
        help="Comma list; other identities get ResourceNotFoundException.",
    )
    add(
        "--record-path",
        dest="sandbox_record_path",
        metavar="PATH",
        default=None,
        help="Also append every accepted send to this file as JSON lines.",
    )
    add(
        "--seed",
        dest="sandbox_seed",
        metavar="INT",
        type=int,
        default=None,
        help="Seed of the fault and jitter randomness.",
    )
    add(
        "--events-queue-url",
        dest="sandbox_events_queue_url",
        metavar="URL",
        default=None,
        help="Publish the delivery events of every accepted send to this SQS queue (through "
        "the SQS endpoint of the AWS environment, e.g. AWS_ENDPOINT_URL_SQS).",
    )
    add(
        "--events-envelope",
        dest="sandbox_events_envelope",
        choices=EVENT_ENVELOPES,
        default="raw",
        help="How an event is carried: raw (an SNS raw subscription), sns (an SNS "
        "notification) or eventbridge (default raw).",
    )
    add(
        "--events-outcomes",
        dest="sandbox_events_outcomes",
        action="append",
        default=[],
        metavar="OUTCOME=WEIGHT",
        help="Weights of the final outcomes; repeat or comma-separate, e.g. "
        f"'delivered=0.9,spam=0.1' (default delivered=1). Outcomes: {', '.join(EVENT_OUTCOMES)}.",
    )
    add(
        "--events-delay-ms",
        dest="sandbox_events_delay_ms",
        metavar="MS",
        type=float,
        default=0.0,
        help="Time from a send to its last event; earlier events are spread before it.",
    )
    add(
        "--events-jitter-ms",
        dest="sandbox_events_jitter_ms",
        metavar="MS",
        type=float,
        default=0.0,
        help="Uniform +/- jitter on each event's delay (never below 0).",
    )
    add(
        "--events-duplicate-rate",
        dest="sandbox_events_duplicate_rate",
        metavar="FRACTION",
        type=float,
        default=0.0,
        help="Probability (0..1) that an event is published twice.",
    )
    add(
        "--events-reorder",
        dest="sandbox_events_reorder",
        action="store_true",
        help="Publish each message's events in shuffled order.",
    )
    add(
        "--cut-after-accept-rate",
        dest="sandbox_cut_after_accept_rate",
        metavar="FRACTION",
        type=float,
        default=0.0,
        help="Fraction (0..1) of sends accepted (recorded, events published) whose "
        "connection is then dropped without an answer.",
    )
    add(
        "--log-requests",
        dest="sandbox_log_requests",
        action="store_true",
        help="Log every call (numbers masked) at debug level.",
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The :class:`SandboxConfig` of parsed options; raises ValueError on bad values."""
    known = args.sandbox_known_identities
    return SandboxConfig(
        default_mps=args.sandbox_mps,
        mps=parse_rates(args.sandbox_rate),
        burst_s=args.sandbox_burst_s,
        latency_ms=args.sandbox_latency_ms,
        latency_jitter_ms=args.sandbox_latency_jitter_ms,
        fault_rate=args.sandbox_fault_rate,
        opted_out=parse_list(args.sandbox_opted_out),
        blocked_prefixes=parse_list(args.sandbox_blocked_prefixes),
        known_identities=None if known is None else parse_list(known),
        record_path=args.sandbox_record_path,
        seed=args.sandbox_seed,
        events_queue_url=args.sandbox_events_queue_url,
        events_envelope=args.sandbox_events_envelope,
        events_outcomes=parse_outcomes(args.sandbox_events_outcomes) or {"delivered": 1.0},
        events_delay_ms=args.sandbox_events_delay_ms,
        events_jitter_ms=args.sandbox_events_jitter_ms,
        events_duplicate_rate=args.sandbox_events_duplicate_rate,
        events_reorder=args.sandbox_events_reorder,
        cut_after_accept_rate=args.sandbox_cut_after_accept_rate,
    )


async def serve(config: SandboxConfig, host: str, port: int) -> int:
    """Serve until SIGINT/SIGTERM; print the ready line once listening."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with await start_sandbox(config, host, port) as sandbox:
            ready = {"event": "sandbox_ready", "url": sandbox.url, "port": sandbox.port}
            sys.stdout.write(json.dumps(ready) + "\n")
            sys.stdout.flush()
            await stop.wait()
            log.info("sandbox_stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the sandbox from parsed options; returns the process exit status."""
    level = logging.DEBUG if args.sandbox_log_requests else logging.INFO
    configure_logging(logging.getLevelName(level), "json")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(config, args.sandbox_host, args.sandbox_port))
    except OSError as exc:
        log.error("sandbox_listen_failed", error=str(exc))
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.sandbox",
        description="Local PinpointSMSVoiceV2 SendMediaMessage endpoint for development.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
