"""Start-up checks: before anything is received, each dependency is asked once.

A problem stops the worker with one line that says what is wrong and what to do (and a
``startup_failed`` log event, see :mod:`worker.cli`), and an exit code from ``sysexits.h``:
:data:`EX_CONFIG` (78) when the configuration is wrong (no or rejected credentials, a missing
queue, dead-letter queue or table, a table with the wrong key), :data:`EX_UNAVAILABLE` (69)
when SQS or DynamoDB does not answer (worth a restart later, not a fix). What the worker can
run without is a warning: a queue with no redrive policy, a queue URL on another host than
the SQS endpoint the worker calls, a check the worker's role may not make (``AccessDenied``
on the dead-letter queue or the table's description).

Every call goes through the clients :func:`worker.aws.clients.open_clients` opened and every
failure is read with :mod:`worker.aws.errors`. See docs/operating.md ("Start-up checks and
exit codes").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.exceptions import PartialCredentialsError as _PartialCredentials

from worker.aws.clients import AwsClients
from worker.aws.endpoints import endpoint_mismatch
from worker.aws.errors import (
    ACCESS_DENIED_CODES,
    CREDENTIAL_CODES,
    QUEUE_MISSING_CODES,
    TABLE_MISSING,
    describe,
    error_code,
    error_message,
    http_status,
    is_unavailable,
)
from worker.logs import get_logger
from worker.settings import Settings
from worker.status.model import REQUEST_KEY

log = get_logger(__name__)

EX_UNAVAILABLE = 69  # sysexits.h: a dependency is unreachable
EX_CONFIG = 78  # sysexits.h: the configuration is wrong
CHECK_TIMEOUT_S = 30.0  # the most one check's call may take, retries included

NO_CREDENTIALS = (
    "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run with an instance or task role"
)
_ENDPOINT_VARIABLE = {"SQS": "AWS_ENDPOINT_URL_SQS", "DynamoDB": "AWS_ENDPOINT_URL_DYNAMODB"}
_INIT = (
    "'sms-worker init --queue-name NAME --table TABLE' creates the queue, its dead-letter "
    "queue and the table"
)

T = TypeVar("T")


class StartupError(Exception):
    """A start-up check failed: ``message`` (one line) says what was wrong and what to do;
    the process exits with ``exit_code``; ``check`` names the check in the log event."""

    def __init__(self, exit_code: int, message: str, *, check: str = "startup") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.check = check


async def check_dependencies(
    settings: Settings, clients: AwsClients, queue_urls: Sequence[str]
) -> None:
    """Credentials, then each queue (its endpoint, its redrive policy and dead-letter
    queue), then the status table. Raises :class:`StartupError`; logs the warnings."""
    await _check_credentials(clients.session)
    sqs_endpoint = str(clients.sqs.meta.endpoint_url)
    for queue_url in queue_urls:
        mismatch = endpoint_mismatch(queue_url, sqs_endpoint)
        if mismatch is not None:
            log.warning(
                "queue_endpoint_mismatch",
                queue_url=queue_url,
                endpoint=sqs_endpoint,
                detail=mismatch,
            )
        # Without a configured max_receive_count the redrive lookup warns no_redrive_policy.
        await _check_queue(
            clients.sqs, queue_url, warn_no_redrive=settings.max_receive_count is not None
        )
    await _check_table(clients.dynamodb, settings.table)
    log.info("startup_checked", queues=len(queue_urls), table=settings.table)


async def _check_credentials(session: Any) -> None:
    try:
        credentials = await session.get_credentials()
    except BotoCoreError as exc:  # a profile that does not exist, a credential_process failing
        raise StartupError(
            EX_CONFIG,
            f"the AWS credentials could not be loaded ({exc}): fix AWS_PROFILE or the "
            "credentials configuration",
            check="credentials",
        ) from None
    if credentials is None:
        raise StartupError(EX_CONFIG, NO_CREDENTIALS, check="credentials")


def _rejected(exc: ClientError) -> bool:
    """The service refused the credentials themselves (not a missing permission)."""
    code = error_code(exc)
    if code in ACCESS_DENIED_CODES:
        return False
    return code in CREDENTIAL_CODES or http_status(exc) == 403


async def _ask(service: str, client: Any, call: Awaitable[T]) -> T:
    """One check's call. Rejected credentials and an unreachable service become a
    :class:`StartupError`; any other answer (``ClientError``) is the caller's to read."""
    endpoint = client.meta.endpoint_url
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await call
    except (NoCredentialsError, _PartialCredentials):
        raise StartupError(EX_CONFIG, NO_CREDENTIALS, check="credentials") from None
    except ClientError as exc:
        if _rejected(exc):
            raise StartupError(
                EX_CONFIG,
                f"{service} at {endpoint} rejected the AWS credentials ({describe(exc)}): "
                "refresh them, or check AWS_PROFILE / AWS_ACCESS_KEY_ID and the region",
                check="credentials",
            ) from None
        if not is_unavailable(exc):
            raise
        raise _unreachable(service, endpoint, exc) from None
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise _unreachable(service, endpoint, exc) from None


def _unreachable(service: str, endpoint: str, exc: BaseException) -> StartupError:
    return StartupError(
        EX_UNAVAILABLE,
        f"could not reach {service} at {endpoint} ({describe(exc)}): check the network and "
        f"the region, and {_ENDPOINT_VARIABLE[service]} if it is set; start the worker again "
        "once it answers",
        check=service.lower(),
    )


def _refused(check: str, what: str, exc: ClientError) -> StartupError:
    return StartupError(
        EX_CONFIG,
        f"{what} failed ({describe(exc)}: {error_message(exc)}): check the worker's AWS "
        "configuration",
        check=check,
    )


async def _check_queue(sqs: Any, queue_url: str, *, warn_no_redrive: bool) -> None:
    try:
        response = await _ask(
            "SQS",
            sqs,
            sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]),
        )
    except ClientError as exc:
        code = error_code(exc)
        if code in QUEUE_MISSING_CODES:
            raise StartupError(
                EX_CONFIG,
                f"the queue {queue_url} does not exist (SQS at {sqs.meta.endpoint_url}, region "
                f"{sqs.meta.region_name}): check SMS_WORKER_QUEUE_URL and AWS_REGION; {_INIT}",
                check="queue",
            ) from None
        if code in ACCESS_DENIED_CODES:
            raise StartupError(
                EX_CONFIG,
                f"sqs:GetQueueAttributes on {queue_url} was denied ({code}): grant it to the "
                "worker's role (it reads the queue's redrive policy)",
                check="queue",
            ) from None
        raise _refused("queue", f"GetQueueAttributes on {queue_url}", exc) from None
    policy = (response.get("Attributes") or {}).get("RedrivePolicy")
    if not policy:
        if warn_no_redrive:
            log.warning(
                "no_redrive_policy",
                queue_url=queue_url,
                action="give the queue a dead-letter queue (sms-worker init does)",
            )
        return
    try:
        target = str(json.loads(policy)["deadLetterTargetArn"])
    except (ValueError, KeyError, TypeError):
        target = ""
    await _check_dead_letter_queue(sqs, queue_url, target)


async def _check_dead_letter_queue(sqs: Any, queue_url: str, arn: str) -> None:
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise StartupError(
            EX_CONFIG,
            f"the redrive policy of {queue_url} names {arn!r}, not an SQS queue ARN: fix the "
            "queue's redrive policy",
            check="dead_letter_queue",
        )
    account, name = parts[4], parts[5]
    try:
        await _ask("SQS", sqs, sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account))
    except ClientError as exc:
        code = error_code(exc)
        if code in QUEUE_MISSING_CODES:
            raise StartupError(
                EX_CONFIG,
                f"the dead-letter queue {name} that the redrive policy of {queue_url} names "
                "does not exist, so messages out of receives would be lost: create it, or fix "
                f"the queue's redrive policy; {_INIT}",
                check="dead_letter_queue",
            ) from None
        if code in ACCESS_DENIED_CODES:
            log.warning(
                "dead_letter_queue_not_checked",
                dead_letter_queue=arn,
                error_code=code,
                action="grant sqs:GetQueueUrl on the dead-letter queue to check it at start-up",
            )
            return
        raise _refused("dead_letter_queue", f"GetQueueUrl of {name}", exc) from None


async def _check_table(ddb: Any, table: str) -> None:
    try:
        described = (await _ask("DynamoDB", ddb, ddb.describe_table(TableName=table)))["Table"]
    except ClientError as exc:
        code = error_code(exc)
        if code == TABLE_MISSING:
            raise StartupError(
                EX_CONFIG,
                f"the table {table!r} does not exist (DynamoDB at {ddb.meta.endpoint_url}, "
                f"region {ddb.meta.region_name}): check SMS_WORKER_TABLE and AWS_REGION; {_INIT}",
                check="table",
            ) from None
        if code in ACCESS_DENIED_CODES:
            log.warning(
                "table_not_checked",
                table=table,
                error_code=code,
                action="grant dynamodb:DescribeTable on the table to check it at start-up",
            )
            return
        raise _refused("table", f"DescribeTable of {table!r}", exc) from None
    found = wrong_key(described)
    if found is not None:
        raise StartupError(
            EX_CONFIG,
            f"the table {table!r} has the key {found}, not the status table's ({REQUEST_KEY}, "
            "type S, partition key, no sort key): point SMS_WORKER_TABLE at the status table, "
            "or create one with 'sms-worker init'",
            check="table",
        )


def wrong_key(table: dict[str, Any]) -> str | None:
    """The key of a described table when it is not the status table's, e.g.
    ``id (S, HASH)``; ``None`` when it is (``RequestId`` of type S, no sort key)."""
    keys = [(k.get("AttributeName"), k.get("KeyType")) for k in table.get("KeySchema", [])]
    types = {
        a.get("AttributeName"): a.get("AttributeType")
        for a in table.get("AttributeDefinitions", [])
    }
    if keys == [(REQUEST_KEY, "HASH")] and types.get(REQUEST_KEY) == "S":
        return None
    return ", ".join(f"{n} ({types.get(n, '?')}, {kind})" for n, kind in keys) or "none"
