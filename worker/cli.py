"""``sms-worker``: the command line. Each setting is an option and an ``SMS_WORKER_`` variable."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import types
import typing
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from worker import __version__
from worker.logs import configure_logging, get_logger
from worker.masking import mask_text
from worker.settings import ENV_PREFIX, Settings, unknown_variables

if TYPE_CHECKING:
    from worker.runtime.startup import StartupError


def _option_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """argparse type and choices for a settings field."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return str, [str(a) for a in args]
    if annotation in (int, float):
        return annotation, None
    return str, None


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """One option per settings field; unset options fall back to the environment."""
    group = parser.add_argument_group(
        "settings", f"each option is also the environment variable {ENV_PREFIX}<NAME>"
    )
    for name, info in Settings.model_fields.items():
        kind, choices = _option_type(info.annotation)
        env = ENV_PREFIX + name.upper()
        if info.is_required():
            default_text = "required"
        elif info.default_factory is not None:
            default_text = "default: " + str(info.default_factory())  # type: ignore[call-arg]
        else:
            default_text = f"default: {info.default}"
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            choices=choices,
            default=argparse.SUPPRESS,
            metavar=None if choices else name.upper(),
            help=f"{info.description or ''} [{env}; {default_text}]",
        )


def load_settings(args: argparse.Namespace) -> Settings:
    """The settings of ``run``; an ``SMS_WORKER_*`` variable that is no setting is an error
    (:class:`~worker.runtime.startup.StartupError`, exit 78) naming the closest one."""
    from worker.runtime.startup import EX_CONFIG, StartupError

    unknown = unknown_variables(os.environ)
    if unknown:
        problems = [
            f"{name} is not a setting" + (f": did you mean {close}?" if close else "")
            for name, close in unknown
        ]
        raise StartupError(
            EX_CONFIG,
            "; ".join(problems)
            + f" Rename or unset {'them' if len(unknown) > 1 else 'it'} ('sms-worker run "
            "--help' lists every setting).",
            check="environment",
        )
    overrides = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    return Settings(**overrides)


def _say(text: str) -> None:
    """A line for the person at the terminal; a broken stderr must not turn it into a crash."""
    with suppress(OSError, ValueError):
        print(mask_text(text), file=sys.stderr, flush=True)


def report_startup_error(error: StartupError) -> int:
    """A failed start-up check: one ``startup_failed`` log event, one line that says what was
    wrong and what to do, and its exit code (78 configuration, 69 unavailable)."""
    get_logger("worker.cli").error(
        "startup_failed", check=error.check, exit_code=error.exit_code, detail=error.message
    )
    _say(f"sms-worker: {error.message}")
    return error.exit_code


def explain_settings_error(error: ValidationError) -> str:
    lines = ["sms-worker: the settings are not valid:"]
    for problem in error.errors():
        loc = ".".join(str(p) for p in problem["loc"]) or "settings"
        if loc in Settings.model_fields:
            where = f"--{loc.replace('_', '-')} / {ENV_PREFIX}{loc.upper()}"
        else:
            where = loc
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "is required and was not given"
        lines.append(f"  {where}: {message}")
    lines.append("Run 'sms-worker run --help' for every setting.")
    return "\n".join(lines)


async def _run_worker(settings: Settings, handlers: tuple[str, ...] | None = None) -> int:
    from worker.aws.clients import ConfigurationError
    from worker.runtime.startup import EX_CONFIG, StartupError
    from worker.runtime.worker import Worker

    worker = Worker(settings, handlers)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop, sig.name)
    try:
        return await worker.run()
    except StartupError as exc:
        return report_startup_error(exc)
    except ConfigurationError as exc:
        return report_startup_error(StartupError(EX_CONFIG, str(exc), check="configuration"))


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop (libuv, the loop uvicorn runs on) when installed and not turned off: it runs
    the worker's many small sockets and callbacks at a fraction of asyncio's CPU."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit(
                "SMS_WORKER_EVENT_LOOP=uvloop but uvloop is not installed: "
                "pip install uvloop, or set SMS_WORKER_EVENT_LOOP=auto"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def cmd_run(args: argparse.Namespace, handlers: tuple[str, ...] | None = None) -> int:
    from worker.runtime.startup import StartupError

    try:
        settings = load_settings(args)
    except ValidationError as exc:
        _say(explain_settings_error(exc))
        return 2
    except StartupError as exc:
        configure_logging()
        return report_startup_error(exc)
    configure_logging(settings.log_level, settings.log_format)
    with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
        return runner.run(_run_worker(settings, handlers))


def cmd_events(args: argparse.Namespace) -> int:
    """``run`` with the events route alone (it scales apart from the senders): it needs
    ``events_queue_url`` and ``table``; ``queue_url`` defaults to the events queue (only
    the events queue is received from)."""
    if not getattr(args, "events_queue_url", None) and not os.environ.get(
        "SMS_WORKER_EVENTS_QUEUE_URL"
    ):
        _say(
            "sms-worker events: no events queue: set SMS_WORKER_EVENTS_QUEUE_URL or "
            "--events-queue-url to the queue your configuration set's events reach"
        )
        return 2
    if not getattr(args, "queue_url", None) and not os.environ.get("SMS_WORKER_QUEUE_URL"):
        args.queue_url = getattr(args, "events_queue_url", None) or os.environ.get(
            "SMS_WORKER_EVENTS_QUEUE_URL"
        )
    return cmd_run(args, handlers=("events",))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sms-worker",
        description="Send MMS requests from an SQS queue through AWS End User Messaging SMS.",
    )
    parser.add_argument("--version", action="version", version=f"sms-worker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the worker until SIGTERM/SIGINT",
        description="Long-poll the queue, send each request, record its outcome. AWS "
        "endpoints, region and credentials come from the standard AWS configuration chain "
        "(AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB, "
        "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2, ...).",
    )
    add_settings_options(run)
    run.set_defaults(handler=cmd_run)

    events = commands.add_parser(
        "events",
        help="run the delivery-events consumer alone until SIGTERM/SIGINT",
        description="Drain SMS_WORKER_EVENTS_QUEUE_URL (End User Messaging delivery events: "
        "raw, SNS-enveloped or EventBridge-enveloped) into the status table, apart from the "
        "senders so it scales on its own queue. Takes the settings of 'run'; "
        "SMS_WORKER_QUEUE_URL is not needed.",
    )
    add_settings_options(events)
    events.set_defaults(handler=cmd_events)

    from worker.sandbox import cli as sandbox_cli

    sandbox = commands.add_parser(
        "sandbox",
        help="run the local PinpointSMSVoiceV2 sandbox endpoint",
        description="A local SendMediaMessage endpoint for development and load tests.",
    )
    sandbox_cli.add_arguments(sandbox)
    sandbox.set_defaults(handler=sandbox_cli.run)

    from worker.ops import cli as ops_cli
    from worker.producer import cli as producer_cli

    producer_cli.register(commands)  # enqueue
    ops_cli.register(commands)  # init, status, campaign, dlq
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result
