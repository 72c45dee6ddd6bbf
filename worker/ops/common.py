"""What the ops commands share: options, AWS clients, and errors turned into messages."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from worker.aws import clients
from worker.aws.errors import ACCESS_DENIED_CODES, CREDENTIAL_CODES, error_field
from worker.masking import mask_text

TABLE_ENV = "SMS_WORKER_TABLE"
DEFAULT_TIMEOUT_S = 30.0
SLOW_CALL_S = 1.0  # a call slower than this says what it is waiting for
T = TypeVar("T")


class OpsError(Exception):
    """A problem the user can fix; ``str()`` says what was wrong and what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_region_option(parser: argparse.ArgumentParser) -> None:
    # botocore reads AWS_DEFAULT_REGION and the profile but not AWS_REGION; take it here.
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or None,
        help="AWS region [default: AWS_REGION, then AWS_DEFAULT_REGION or the profile's]",
    )


def add_table_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        default=os.environ.get(TABLE_ENV) or None,
        metavar="TABLE",
        help=f"the DynamoDB status table [default: {TABLE_ENV}]",
    )


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: use {low:g} to {high:g} seconds"
            )
        return value

    return parse


def add_timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=seconds_between(1, 3600),
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help="seconds to wait for an answer from AWS, retries included, before giving up "
        f"[default: {DEFAULT_TIMEOUT_S:g}]",
    )


def require_table(args: argparse.Namespace) -> str:
    table: str | None = args.table
    if not table:
        raise OpsError(
            f"no status table given: pass --table NAME or set {TABLE_ENV} "
            "(the table the workers write to)",
            exit_code=2,
        )
    return table


@asynccontextmanager
async def aws_client(
    service: str, region: str | None, timeout_s: float | None = None
) -> AsyncIterator[Any]:
    """An aiobotocore client from the standard AWS chain (endpoints, credentials); with
    ``timeout_s``, no single attempt waits longer (bound the whole call with :func:`bounded`)."""
    config: dict[str, Any] = {
        "connect_timeout": 5 if timeout_s is None else min(5.0, timeout_s),
        "read_timeout": 20 if timeout_s is None else timeout_s,
        "retries": {"mode": "standard", "max_attempts": 3},
    }
    try:
        async with clients.aws_client(service, region=region, **config) as client:
            yield client
    except clients.ConfigurationError:
        raise OpsError(
            "no AWS region is configured: pass --region or set AWS_REGION", exit_code=2
        ) from None


async def bounded(call: Awaitable[T], client: Any, timeout_s: float, what: str = "DynamoDB") -> T:
    """``call``'s answer within ``timeout_s`` (retries included), else an :class:`OpsError`;
    a call slower than a second first says on stderr what it is waiting for."""
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None) or "its endpoint"

    async def note() -> None:
        await asyncio.sleep(SLOW_CALL_S)
        say(f"waiting for {what} at {endpoint}... (up to {timeout_s:g}s; --timeout S)")

    noting = asyncio.ensure_future(note())
    try:
        async with asyncio.timeout(timeout_s):
            return await call
    except TimeoutError:
        raise OpsError(
            f"no answer from {what} at {endpoint} within {timeout_s:g}s: check the network "
            "and the region, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> if you set them "
            "(--timeout S waits longer)"
        ) from None
    finally:
        noting.cancel()
        with suppress(asyncio.CancelledError):
            await noting


def explain_client_error(exc: ClientError, table: str | None = None) -> str:
    code = error_field(exc, "Code") or "?"
    message = error_field(exc, "Message") or ""
    operation = getattr(exc, "operation_name", "the call")
    if code == "ResourceNotFoundException" and table:
        return (
            f"table {table!r} does not exist in this region and account ({operation}: "
            f"{message}): check --table / {TABLE_ENV} and AWS_REGION, or create it with "
            "'sms-worker init'"
        )
    if code in ACCESS_DENIED_CODES:
        return (
            f"{operation} was denied ({message}): grant this identity that permission on "
            "the resource, or run with a role that has it"
        )
    if code in CREDENTIAL_CODES:
        return f"{operation}: the AWS credentials were rejected ({code}): refresh them"
    return f"{operation} failed: {code}: {message}"


def run_command(main: Coroutine[Any, Any, int], *, table: str | None = None) -> int:
    """Run one command's coroutine; a problem becomes a message on stderr and an exit code
    (2: the invocation or configuration, 1: anything else)."""
    try:
        return asyncio.run(main)
    except OpsError as exc:
        return fail(str(exc), exc.exit_code)
    except ClientError as exc:
        return fail(explain_client_error(exc, table))
    except NoCredentialsError:
        return fail(
            "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run with an instance or task role",
            2,
        )
    except EndpointConnectionError as exc:
        return fail(
            f"could not connect to {exc.kwargs.get('endpoint_url')}: check the network, "
            "the region, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> if you set them"
        )
    except BotoCoreError as exc:
        return fail(f"the AWS call failed: {exc}")


def say(message: str) -> None:
    print(f"sms-worker: {mask_text(message)}", file=sys.stderr, flush=True)


def fail(message: str, exit_code: int = 1) -> int:
    say(message)
    return exit_code
