"""The status table: the idempotent claim, the final write, and reads.

The record is a small state machine (:mod:`worker.status.model`): a request is *claimed* with one
conditional write (new, ``RETRYING``, or ``SENDING`` whose lease has passed), and its outcome
is written with a condition that this worker still owns the claim (its lease token). On a
failed condition DynamoDB hands back the existing record (``ALL_OLD``), so no second read is
needed to tell a duplicate from a live claim.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from botocore.exceptions import ClientError

from worker.aws.errors import CONDITION_FAILED, describe, error_code, is_unavailable
from worker.health import DYNAMODB, DependencyHealth
from worker.status.codec import decode_item, encode_value
from worker.status.model import (
    REQUEST_KEY,
    Claim,
    ClaimRefused,
    Outcome,
    RecordFields,
    Status,
    now_iso,
)

_PLACEHOLDER = re.compile(r":\w+")
_CLAIMABLE = (
    "attribute_not_exists(RequestId) OR #Status = :retrying "
    "OR (#Status = :sending AND #LeaseUntil < :now_ms)"
)


class StatusStore:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        lease_s: float,
        ttl_days: int,
        health: DependencyHealth | None = None,
    ) -> None:
        self._client = client
        self._table = table
        self._health = health or DependencyHealth()
        self._lease_ms = int(lease_s * 1000)
        self._ttl_s = ttl_days * 86_400

    def _common(self, info: RecordFields, now_ms: int) -> tuple[list[str], dict[str, Any]]:
        """SET clauses and values every write makes (copied fields, timestamps, TTL)."""
        sets = [
            "UpdatedAt = :now_iso",
            "CreatedAt = if_not_exists(CreatedAt, :now_iso)",
            "SqsMessageId = :sqs_id",
            "ReceiveCount = :rc",
            "ExpiresAt = :expires",
        ]
        values: dict[str, Any] = {
            ":now_iso": now_iso(),
            ":sqs_id": info.sqs_message_id,
            ":rc": info.receive_count,
            ":expires": now_ms // 1000 + self._ttl_s,
        }
        for attr, value in (
            ("CampaignId", info.campaign_id),
            ("DestinationPhoneNumber", info.destination),
            ("OriginationIdentity", info.identity),
        ):
            if value is not None:
                sets.append(f"{attr} = :{attr}")
                values[f":{attr}"] = value
        if info.dry_run:
            sets.append("DryRun = :dry")
            values[":dry"] = True
        return sets, values

    async def claim(self, info: RecordFields) -> Claim | ClaimRefused:
        """Take the request for one send (status SENDING) unless it is final or leased."""
        now_ms = int(time.time() * 1000)
        token = secrets.token_hex(8)
        sets, values = self._common(info, now_ms)
        sets += ["#Status = :sending", "#LeaseUntil = :lease", "LeaseToken = :token"]
        values |= {
            ":sending": Status.SENDING,
            ":retrying": Status.RETRYING,
            ":now_ms": now_ms,
            ":lease": now_ms + self._lease_ms,
            ":token": token,
            ":one": 1,
        }
        try:
            response = await self._update(
                info.request_id,
                f"SET {', '.join(sets)} ADD Attempts :one",
                _CLAIMABLE,
                values,
                return_values="ALL_NEW",
                operation="claim",
            )
        except _ConditionFailed as lost:
            if lost.record.get("LeaseToken") == token:
                # Our own write went through and its answer was lost; botocore retried it.
                return Claim(
                    info.request_id,
                    token,
                    int(lost.record.get("Attempts") or 1),
                    now_ms + self._lease_ms,
                    {k: encode_value(v) for k, v in lost.record.items()},
                )
            return ClaimRefused(lost.record)
        raw = response.get("Attributes", {})
        attempts = int(raw.get("Attempts", {}).get("N", "1"))
        return Claim(info.request_id, token, attempts, now_ms + self._lease_ms, raw)

    async def write_outcome(
        self, claim: Claim, info: RecordFields, outcome: Outcome, calls: int
    ) -> ClaimRefused | None:
        """Write a claim's FAILED or RETRYING outcome, on the condition that the claim is still
        ours; returns the record instead if the lease was lost. (SENT: see SentWriter.)"""
        now_ms = int(time.time() * 1000)
        sets, values = self._common(info, now_ms)
        sets += ["#Status = :status", "Attempts = :attempts"]
        values |= {
            ":status": outcome.status,
            ":attempts": claim.attempts + max(0, calls - 1),
            ":token": claim.token,
            ":sending": Status.SENDING,
        }
        removes = ["#LeaseUntil"]
        self._error_fields(outcome, sets, removes, values)
        expression = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
        try:
            await self._update(
                claim.request_id,
                expression,
                "LeaseToken = :token AND #Status = :sending",
                values,
                operation="record",
            )
        except _ConditionFailed as lost:
            if _is_own_write(lost.record, claim.token, outcome.status):
                return None  # a retried write that finds its own outcome: done, not lost
            return ClaimRefused(lost.record)
        return None

    async def record_without_call(
        self, info: RecordFields, outcome: Outcome
    ) -> ClaimRefused | None:
        """A final status reached before any call (invalid, expired), unless already final
        or claimed: then the existing record is returned and nothing is written."""
        now_ms = int(time.time() * 1000)
        token = secrets.token_hex(8)
        sets, values = self._common(info, now_ms)
        sets += [
            "#Status = :status",
            "Attempts = if_not_exists(Attempts, :zero)",
            "LeaseToken = :token",
        ]
        values |= {
            ":status": outcome.status,
            ":token": token,
            ":zero": 0,
            ":sending": Status.SENDING,
            ":retrying": Status.RETRYING,
            ":now_ms": now_ms,
        }
        removes = ["#LeaseUntil"]
        self._error_fields(outcome, sets, removes, values)
        expression = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
        try:
            await self._update(info.request_id, expression, _CLAIMABLE, values, operation="record")
        except _ConditionFailed as lost:
            if _is_own_write(lost.record, token, outcome.status):
                return None  # our own write, retried after its answer was lost
            return ClaimRefused(lost.record)
        return None

    async def get(self, request_id: str) -> dict[str, Any] | None:
        response = await self._observed(
            self._client.get_item(
                TableName=self._table,
                Key={REQUEST_KEY: {"S": request_id}},
                ConsistentRead=True,
            ),
            "get",
        )
        item = response.get("Item")
        return decode_item(item) if item else None

    @staticmethod
    def _error_fields(
        outcome: Outcome, sets: list[str], removes: list[str], values: dict[str, Any]
    ) -> None:
        for attr, value in (
            ("ErrorCode", outcome.error_code),
            ("ErrorReason", outcome.error_reason),
            ("ErrorMessage", outcome.error_message),
        ):
            if value:
                sets.append(f"{attr} = :{attr}")
                values[f":{attr}"] = value
            else:
                removes.append(attr)

    async def _update(
        self,
        request_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        return_values: str = "NONE",
        operation: str = "update",
    ) -> dict[str, Any]:
        names = {"#Status": "Status"}
        if "#LeaseUntil" in update or "#LeaseUntil" in condition:
            names["#LeaseUntil"] = "LeaseUntil"
        placeholders = set(_PLACEHOLDER.findall(update + " " + condition))
        used = {k: v for k, v in values.items() if k in placeholders}
        try:
            response: dict[str, Any] = await self._observed(
                self._client.update_item(
                    TableName=self._table,
                    Key={REQUEST_KEY: {"S": request_id}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={k: encode_value(v) for k, v in used.items()},
                    ReturnValues=return_values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
                operation,
            )
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            item = exc.response.get("Item")
            if item is None:
                # A DynamoDB-compatible server without ReturnValuesOnConditionCheckFailure
                # (dynalite): read the record that failed the condition.
                record = await self.get(request_id) or {}
            else:
                record = decode_item(item)
            raise _ConditionFailed(record) from None
        return response

    async def _observed(
        self, call: Coroutine[Any, Any, dict[str, Any]], operation: str
    ) -> dict[str, Any]:
        """Await one DynamoDB call and tell the health tracker whether DynamoDB answered (and
        count a failure other than a refused condition, which is an answer)."""
        try:
            response = await call
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                self._health.count(DYNAMODB, operation, describe(exc))
            if is_unavailable(exc):
                self._health.failed(DYNAMODB, describe(exc))
            else:
                self._health.ok(DYNAMODB)  # it answered (a refused condition is an answer)
            raise
        except Exception as exc:
            self._health.count(DYNAMODB, operation, describe(exc))
            if is_unavailable(exc):
                self._health.failed(DYNAMODB, describe(exc))
            raise
        self._health.ok(DYNAMODB)
        return response


def _is_own_write(record: dict[str, Any], token: str, status: str) -> bool:
    return record.get("LeaseToken") == token and record.get("Status") == status


class _ConditionFailed(Exception):
    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.record = record
