"""The status table, created or brought to what the worker needs (key, TTL, PITR)."""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import ClientError

from worker.aws.errors import error_code, error_message
from worker.resources.types import (
    CREATED,
    ENABLED,
    EXISTS,
    KEY,
    SKIPPED,
    TTL_ATTRIBUTE,
    ResourceConflict,
    Step,
)


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
        if error_code(exc) != "UnknownOperationException":
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
                if error_code(exc) != "ContinuousBackupsUnavailableException" or attempts >= 20:
                    raise
            await asyncio.sleep(3)
    except ClientError as exc:
        detail = (
            f"not enabled ({error_code(exc)}: {error_message(exc)}); the worker runs without "
            "it, but "
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
        if error_code(exc) != "ResourceNotFoundException":
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
            if error_code(exc2) != "ResourceInUseException":
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
