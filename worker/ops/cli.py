"""The operator's subcommands of ``sms-worker``: init, status, campaign, dlq."""

from __future__ import annotations

import argparse
from typing import Any

from worker.ops import campaign, dlq, init, status


def register(commands: Any) -> None:
    """Add ``init``, ``status``, ``campaign`` and ``dlq`` to ``sms-worker``'s subparsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "init",
        help="create the queue, its dead-letter queue and the status table (idempotent)",
        description="Create, or check and complete, the SQS queue with its dead-letter queue "
        "NAME-dlq and redrive policy, and the DynamoDB status table with TTL on ExpiresAt and "
        "point-in-time recovery, on the endpoint of the standard AWS chain. Running it again "
        "changes nothing. Prints the settings to run the worker with.",
    )
    init.add_arguments(parser)
    parser.set_defaults(handler=init.handle)

    parser = commands.add_parser(
        "status",
        help="print one request's status record",
        description="Print the status record of one request (one consistent GetItem). Phone "
        "numbers are masked unless --show-personal-data is given. Exit 1 if there is none.",
    )
    status.add_arguments(parser)
    parser.set_defaults(handler=status.handle)

    parser = commands.add_parser(
        "campaign",
        help="show a campaign's progress (counts, rate, ETA)",
        description="Show a campaign's outcome counts by status and error, done, expected and "
        "remaining, sends per second and ETA, from its counter item (one GetItem per read). "
        "The counts may trail the status records by about a second.",
    )
    campaign.add_arguments(parser)
    parser.set_defaults(handler=campaign.handle)

    parser = commands.add_parser(
        "dlq",
        help="list the dead-letter queue with each record's status; 'dlq replay' moves it back",
        description="List what the dead-letter queue holds (the source queue's RedrivePolicy "
        "names it, or --dlq-url), each message with its record's status and reason, masked. "
        "'sms-worker dlq replay' moves the matching messages back to the source queue, where a "
        "worker sends each FAILED/RETRIES_EXHAUSTED request again.",
    )
    dlq.add_arguments(parser)
    parser.set_defaults(handler=dlq.handle)
