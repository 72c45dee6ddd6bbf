"""One DynamoDB item's conditional writes and reads, observed for the health tracker.

A refused condition comes back as :class:`ConditionFailed` carrying the record as it stood
(``ReturnValuesOnConditionCheckFailure=ALL_OLD``; a consistent read on servers without it).
"""

from __future__ import annotations

import re
from collections.abc import Coroutine
from typing import Any

from botocore.exceptions import ClientError

from worker.aws.errors import CONDITION_FAILED, describe, error_code, is_unavailable
from worker.health import DYNAMODB, DependencyHealth
from worker.status.codec import decode_item, encode_value
from worker.status.model import REQUEST_KEY

_PLACEHOLDER = re.compile(r":\w+")


class ConditionFailed(Exception):
    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.record = record
        self.reopened = False  # refused (or our own retried write) on the re-opening write


class ConditionalTable:
    def __init__(self, client: Any, table: str, health: DependencyHealth) -> None:
        self._client = client
        self._table = table
        self._health = health

    async def get(self, request_id: str) -> dict[str, Any] | None:
        response = await self.observed(
            self._client.get_item(
                TableName=self._table,
                Key={REQUEST_KEY: {"S": request_id}},
                ConsistentRead=True,
            ),
            "get",
        )
        item = response.get("Item")
        return decode_item(item) if item else None

    async def update(
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
            response: dict[str, Any] = await self.observed(
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
            raise ConditionFailed(record) from None
        return response

    async def observed(
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
