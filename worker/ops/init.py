"""``sms-worker init``: create the queue, its dead-letter queue and the table, idempotently;
with ``--events-queue-name``, also the delivery-events path (events queue and its dead-letter
queue, SNS topic, raw subscription, policies, and with ``--configuration-set`` the
configuration set publishing to the topic)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from worker.ops.cloudformation import QUEUE_NAME_PATTERN, TABLE_NAME_PATTERN, render, template
from worker.ops.common import OpsError, add_region_option, aws_client, fail, run_command
from worker.resources import SKIPPED, Provisioned, ResourceConflict, Step, provision
from worker.resources.events import EventsResources, provision_events


def _name(kind: str, pattern: str, rule: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if re.fullmatch(pattern.strip("^$"), text) is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind}: {rule}")
        return text

    return check


def _whole(low: int, high: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low} to {high}")
        return value

    return check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue-name",
        type=_name(
            "queue name",
            QUEUE_NAME_PATTERN,
            "use 1 to 76 letters, digits, '-' and '_' (the dead-letter queue adds '-dlq'; "
            "the worker uses a standard queue, not FIFO)",
        ),
        metavar="NAME",
        help="the queue of send requests; its dead-letter queue is NAME-dlq",
    )
    parser.add_argument(
        "--table",
        type=_name("table name", TABLE_NAME_PATTERN, "use 3 to 255 letters, digits, '_', '-', '.'"),
        metavar="NAME",
        help="the DynamoDB status table",
    )
    parser.add_argument(
        "--max-receive-count",
        type=_whole(1, 1000),
        default=5,
        metavar="N",
        help="receives before a message moves to the dead-letter queue [default: 5]",
    )
    parser.add_argument(
        "--visibility-timeout-s",
        type=_whole(0, 43_200),
        default=120,
        metavar="S",
        help="the queue's default visibility timeout [default: 120]",
    )
    parser.add_argument(
        "--events-queue-name",
        type=_name(
            "queue name",
            QUEUE_NAME_PATTERN,
            "use 1 to 76 letters, digits, '-' and '_' (its dead-letter queue adds '-dlq', its "
            "SNS topic '-topic')",
        ),
        metavar="NAME",
        help="also create the delivery-events queue NAME (with NAME-dlq), the SNS topic "
        "NAME-topic with a raw subscription to it, and the policies between them",
    )
    parser.add_argument(
        "--configuration-set",
        type=_name(
            "configuration set name", r"^[A-Za-z0-9_-]{1,64}$", "use 1 to 64 letters, digits, '-'"
        ),
        metavar="NAME",
        help="with --events-queue-name: also create the End User Messaging configuration set "
        "NAME with an SNS event destination to the topic (SMS_WORKER_DEFAULT_CONFIGURATION_SET)",
    )
    parser.add_argument(
        "--print-cloudformation",
        nargs="?",
        const="json",
        choices=("json", "yaml"),
        metavar="json|yaml",
        help="print a CloudFormation template for the same resources instead (JSON unless "
        "'yaml' is given, which needs PyYAML); creates nothing",
    )
    add_region_option(parser)


Steps = tuple[Step, ...] | list[Step]


def report(
    provisioned: Provisioned, events: EventsResources | None = None, event_steps: Steps = ()
) -> str:
    lines = []
    steps = (*provisioned.steps, *event_steps)
    width = max(len(step.what) for step in steps)
    for step in steps:
        detail = f"  {step.detail}" if step.detail else ""
        lines.append(f"{step.what:<{width}}  {step.state:<8} {step.name}{detail}")
    if not any(step.changed for step in steps):
        lines.append("nothing changed: everything already existed as asked")
    res = provisioned.resources
    lines += [
        "",
        "# the worker's settings (sms-worker run):",
        f"SMS_WORKER_QUEUE_URL={res.queue_url}",
        f"SMS_WORKER_TABLE={res.table}",
    ]
    if events is not None:
        if events.configuration_set is not None:
            lines.append(f"SMS_WORKER_DEFAULT_CONFIGURATION_SET={events.configuration_set}")
        else:
            lines.append(
                "# SMS_WORKER_DEFAULT_CONFIGURATION_SET=<the configuration set publishing to "
                f"{events.topic_arn}> (not created here: see above)"
            )
        lines += [
            "# the events consumer's (sms-worker events, or sms-worker run with it set):",
            f"SMS_WORKER_EVENTS_QUEUE_URL={events.queue_url}",
        ]
    return "\n".join(lines)


async def _init(args: argparse.Namespace) -> int:
    async with (
        aws_client("sqs", args.region) as sqs,
        aws_client("dynamodb", args.region) as ddb,
    ):
        try:
            provisioned = await provision(
                sqs,
                ddb,
                queue_name=args.queue_name,
                table=args.table,
                max_receive_count=args.max_receive_count,
                visibility_timeout_s=args.visibility_timeout_s,
                point_in_time_recovery=True,
            )
        except ResourceConflict as exc:
            raise OpsError(str(exc)) from None
        events, event_steps = await _init_events(args, sqs)
    print(report(provisioned, events, event_steps))
    for step in (*provisioned.steps, *event_steps):
        if step.state == SKIPPED:
            print(f"sms-worker: warning: {step.what}: {step.detail}", file=sys.stderr)
    return 0


async def _init_events(
    args: argparse.Namespace, sqs: Any
) -> tuple[EventsResources | None, list[Step]]:
    if args.events_queue_name is None:
        return None, []
    async with aws_client("sns", args.region) as sns:
        if args.configuration_set is None:
            return await provision_events(
                sqs, sns, None, queue_name=args.events_queue_name, max_receive_count=5
            )
        async with aws_client("pinpoint-sms-voice-v2", args.region) as sms:
            return await provision_events(
                sqs,
                sns,
                sms,
                queue_name=args.events_queue_name,
                configuration_set=args.configuration_set,
                max_receive_count=5,
            )


def handle(args: argparse.Namespace) -> int:
    if args.configuration_set and not args.events_queue_name:
        return fail(
            "--configuration-set needs --events-queue-name: its event destination publishes "
            "to the events topic that option creates",
            2,
        )
    if args.print_cloudformation:
        document = template(
            queue_name=args.queue_name,
            table=args.table,
            max_receive_count=args.max_receive_count,
            visibility_timeout_s=args.visibility_timeout_s,
            events_queue_name=args.events_queue_name,
            configuration_set=args.configuration_set,
        )
        try:
            print(render(document, args.print_cloudformation), end="")
        except ImportError:
            return fail(
                "YAML output needs PyYAML, which is not installed: 'pip install pyyaml', or "
                "use --print-cloudformation json (JSON is valid CloudFormation too)",
                2,
            )
        return 0
    missing = [o for o, v in (("--queue-name", args.queue_name), ("--table", args.table)) if not v]
    if missing:
        return fail(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required to create "
            "the resources (or pass --print-cloudformation for a template)",
            2,
        )
    return run_command(_init(args))
