"""Create, idempotently, what the worker needs: the queue, its dead-letter queue, the table.

Every step looks first and changes only what differs from what is asked, so running it twice
changes nothing the second time; each step reports what it found or did (:class:`Step`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

RETENTION_S = "1209600"  # 14 days, SQS's maximum, for both queues
TTL_ATTRIBUTE = "ExpiresAt"
KEY = "RequestId"

CREATED, ENABLED, UPDATED, EXISTS, SKIPPED = "created", "enabled", "updated", "exists", "skipped"
_CHANGES = frozenset({CREATED, ENABLED, UPDATED})
_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_QUEUE_EXISTS = ("QueueAlreadyExists", "QueueNameExists")


@dataclass(frozen=True, slots=True)
class Resources:
    queue_url: str
    dlq_url: str
    table: str


@dataclass(frozen=True, slots=True)
class Step:
    """What one step found or did: ``state`` is one of created, enabled, updated, exists,
    skipped (the endpoint does not support it; ``detail`` says why)."""

    what: str
    name: str
    state: str
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.state in _CHANGES


@dataclass(frozen=True, slots=True)
class Provisioned:
    resources: Resources
    steps: tuple[Step, ...]

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps)


class ResourceConflict(RuntimeError):
    """A resource of that name exists but cannot be made what the worker needs."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


# --- queues -------------------------------------------------------------------------------


def queue_attributes(
    dlq_arn: str, *, max_receive_count: int, visibility_timeout_s: int
) -> dict[str, str]:
    return {
        "VisibilityTimeout": str(visibility_timeout_s),
        "MessageRetentionPeriod": RETENTION_S,
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        ),
    }


def _same(attribute: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if attribute == "RedrivePolicy":
        try:
            have, want = json.loads(current), json.loads(wanted)
            return bool(
                have.get("deadLetterTargetArn") == want["deadLetterTargetArn"]
                and int(have.get("maxReceiveCount", 0)) == int(want["maxReceiveCount"])
            )
        except (ValueError, TypeError, AttributeError):
            return False
    return current == wanted


async def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])
    except ClientError as exc:
        if _code(exc) in _NO_QUEUE:
            return None
        raise


async def _one_queue(
    sqs: Any, what: str, name: str, attributes: dict[str, str]
) -> tuple[str, str, Step, set[str]]:
    """The queue ``name`` with ``attributes``: its URL, its ARN, what was done and the
    attributes that were changed."""
    url = await _queue_url(sqs, name)
    state, detail, differ = EXISTS, "", {}
    if url is None:
        try:
            url = str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])
            state = CREATED
        except ClientError as exc:  # created by someone else since we looked
            if _code(exc) not in _QUEUE_EXISTS:
                raise
            url = str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])
    current = (
        await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", *attributes])
    )["Attributes"]
    if state == EXISTS:
        differ = {k: v for k, v in attributes.items() if not _same(k, current.get(k), v)}
        if differ:
            await sqs.set_queue_attributes(QueueUrl=url, Attributes=differ)
            state, detail = UPDATED, "set " + ", ".join(sorted(differ))
    return url, str(current["QueueArn"]), Step(what, url, state, detail), set(differ)


async def provision_queue(
    sqs: Any, name: str, *, max_receive_count: int = 5, visibility_timeout_s: int = 120
) -> tuple[str, str, list[Step]]:
    """The queue ``name`` with a dead-letter queue ``name-dlq`` and a redrive policy to it:
    both URLs and the steps."""
    dlq_url, dlq_arn, dlq_step, _ = await _one_queue(
        sqs, "dead-letter queue", f"{name}-dlq", {"MessageRetentionPeriod": RETENTION_S}
    )
    attributes = queue_attributes(
        dlq_arn, max_receive_count=max_receive_count, visibility_timeout_s=visibility_timeout_s
    )
    queue_url, _, queue_step, changed = await _one_queue(sqs, "queue", name, attributes)
    if queue_step.state == CREATED:
        redrive_state = CREATED
    else:
        redrive_state = UPDATED if "RedrivePolicy" in changed else EXISTS
    redrive = Step(
        "redrive policy", f"maxReceiveCount {max_receive_count} -> {name}-dlq", redrive_state
    )
    return queue_url, dlq_url, [queue_step, dlq_step, redrive]


async def ensure_queue(
    sqs: Any, name: str, *, max_receive_count: int = 5, visibility_timeout_s: int = 120
) -> tuple[str, str]:
    """The queue ``name`` with a dead-letter queue ``name-dlq``; returns both URLs."""
    queue_url, dlq_url, _ = await provision_queue(
        sqs, name, max_receive_count=max_receive_count, visibility_timeout_s=visibility_timeout_s
    )
    return queue_url, dlq_url


# --- the table ----------------------------------------------------------------------------


def _check_key(table: dict[str, Any], name: str) -> None:
    keys = [(k.get("AttributeName"), k.get("KeyType")) for k in table.get("KeySchema", [])]
    types = {
        a.get("AttributeName"): a.get("AttributeType")
        for a in table.get("AttributeDefinitions", [])
    }
    if keys != [(KEY, "HASH")] or types.get(KEY) != "S":
        found = ", ".join(f"{n} ({types.get(n, '?')}, {kind})" for n, kind in keys)
        raise ResourceConflict(
            f"table {name!r} already exists with the key {found}; the status table needs the "
            f"partition key {KEY} of type S and no sort key: choose another table name"
        )


async def _wait_active(ddb: Any, name: str, timeout_s: int = 300) -> dict[str, Any]:
    for _ in range(timeout_s):
        table: dict[str, Any] = (await ddb.describe_table(TableName=name))["Table"]
        if table.get("TableStatus") == "ACTIVE":
            return table
        await asyncio.sleep(1)
    raise ResourceConflict(
        f"table {name!r} is still {table.get('TableStatus')} after {timeout_s} s; "
        "wait until it is ACTIVE and run this again"
    )


async def _ensure_ttl(ddb: Any, name: str) -> Step:
    what = f"TTL on {TTL_ATTRIBUTE}"
    try:
        ttl = (await ddb.describe_time_to_live(TableName=name)).get("TimeToLiveDescription", {})
        status, attribute = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
        if status in ("ENABLED", "ENABLING") and attribute not in (None, TTL_ATTRIBUTE):
            raise ResourceConflict(
                f"table {name!r} has TTL on {attribute!r}, and a table has one TTL attribute; "
                f"the status records expire through {TTL_ATTRIBUTE}: disable that TTL and run "
                "this again, or choose another table name"
            )
        if status in ("ENABLED", "ENABLING"):
            return Step(what, name, EXISTS)
        if status == "DISABLING":
            raise ResourceConflict(
                f"the TTL of table {name!r} is being disabled; DynamoDB accepts a new TTL "
                "setting only once that has finished (up to an hour): run this again later"
            )
        await ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        return Step(what, name, ENABLED)
    except ClientError as exc:
        # Some DynamoDB-compatible local servers (dynalite) have no TTL; real DynamoDB does.
        if _code(exc) != "UnknownOperationException":
            raise
        return Step(what, name, SKIPPED, "this endpoint has no TTL")


async def _ensure_pitr(ddb: Any, name: str) -> Step:
    """Point-in-time recovery; an endpoint that refuses it (local servers) is reported, not
    fatal: the worker does not depend on it."""
    what = "point-in-time recovery"
    try:
        described = (await ddb.describe_continuous_backups(TableName=name))[
            "ContinuousBackupsDescription"
        ]
        pitr = described.get("PointInTimeRecoveryDescription", {})
        if pitr.get("PointInTimeRecoveryStatus") in ("ENABLED", "ENABLING"):
            return Step(what, name, EXISTS)
        attempts = 0
        while True:
            try:
                await ddb.update_continuous_backups(
                    TableName=name,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
                return Step(what, name, ENABLED)
            except ClientError as exc:
                # A new table's backups take a few seconds to become available.
                attempts += 1
                if _code(exc) != "ContinuousBackupsUnavailableException" or attempts >= 20:
                    raise
            await asyncio.sleep(3)
    except ClientError as exc:
        detail = (
            f"not enabled ({_code(exc)}: {_message(exc)}); the worker runs without it, but "
            "enable it (UpdateContinuousBackups, or the DynamoDB console) on real AWS"
        )
        return Step(what, name, SKIPPED, detail)


async def provision_table(
    ddb: Any, name: str, *, point_in_time_recovery: bool = False
) -> list[Step]:
    """The status table (key ``RequestId``, on-demand, TTL on ``ExpiresAt``, optionally
    point-in-time recovery) and what was done."""
    state = EXISTS
    try:
        await ddb.describe_table(TableName=name)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        try:
            await ddb.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
            state = CREATED
        except ClientError as exc2:  # created by someone else since we looked
            if _code(exc2) != "ResourceInUseException":
                raise
    table = await _wait_active(ddb, name)
    _check_key(table, name)
    steps = [Step("table", name, state), await _ensure_ttl(ddb, name)]
    if point_in_time_recovery:
        steps.append(await _ensure_pitr(ddb, name))
    return steps


async def ensure_table(ddb: Any, name: str) -> None:
    """The status table (key ``RequestId``, on-demand, TTL on ``ExpiresAt``)."""
    await provision_table(ddb, name)


# --- both ---------------------------------------------------------------------------------


async def provision(
    sqs: Any,
    ddb: Any,
    *,
    queue_name: str,
    table: str,
    max_receive_count: int = 5,
    visibility_timeout_s: int = 120,
    point_in_time_recovery: bool = False,
) -> Provisioned:
    queue_url, dlq_url, queue_steps = await provision_queue(
        sqs,
        queue_name,
        max_receive_count=max_receive_count,
        visibility_timeout_s=visibility_timeout_s,
    )
    table_steps = await provision_table(ddb, table, point_in_time_recovery=point_in_time_recovery)
    return Provisioned(Resources(queue_url, dlq_url, table), (*queue_steps, *table_steps))


async def ensure_resources(
    sqs: Any, ddb: Any, *, queue_name: str, table: str, max_receive_count: int = 5
) -> Resources:
    provisioned = await provision(
        sqs, ddb, queue_name=queue_name, table=table, max_receive_count=max_receive_count
    )
    return provisioned.resources
