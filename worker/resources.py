"""Create, idempotently, what the worker needs: the queue, its dead-letter queue, the table."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError


@dataclass(frozen=True, slots=True)
class Resources:
    queue_url: str
    dlq_url: str
    table: str


async def ensure_queue(
    sqs: Any, name: str, *, max_receive_count: int = 5, visibility_timeout_s: int = 120
) -> tuple[str, str]:
    """The queue ``name`` with a dead-letter queue ``name-dlq``; returns both URLs."""
    dlq_url = (
        await sqs.create_queue(
            QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"}
        )
    )["QueueUrl"]
    dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    attributes = {
        "VisibilityTimeout": str(visibility_timeout_s),
        "MessageRetentionPeriod": "1209600",
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        ),
    }
    try:
        queue_url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "QueueAlreadyExists",
            "QueueNameExists",
        ):
            raise
        queue_url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        await sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes)
    return str(queue_url), str(dlq_url)


async def ensure_table(ddb: Any, name: str) -> None:
    """The status table (key ``RequestId``, on-demand, TTL on ``ExpiresAt``)."""
    try:
        await ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "RequestId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "RequestId", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    for _ in range(120):
        table = (await ddb.describe_table(TableName=name))["Table"]
        if table.get("TableStatus") == "ACTIVE":
            break
        await asyncio.sleep(1)
    try:
        ttl = (await ddb.describe_time_to_live(TableName=name)).get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            await ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "ExpiresAt"},
            )
    except ClientError as exc:
        # Some DynamoDB-compatible local servers (dynalite) have no TTL; real DynamoDB does.
        if exc.response.get("Error", {}).get("Code") != "UnknownOperationException":
            raise


async def ensure_resources(
    sqs: Any, ddb: Any, *, queue_name: str, table: str, max_receive_count: int = 5
) -> Resources:
    queue_url, dlq_url = await ensure_queue(sqs, queue_name, max_receive_count=max_receive_count)
    await ensure_table(ddb, table)
    return Resources(queue_url, dlq_url, table)
