"""``sms-worker status REQUEST_ID``: one request's record (one consistent GetItem)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from worker.masking import mask_identity, mask_phone, mask_text
from worker.ops.common import (
    OpsError,
    add_region_option,
    add_table_option,
    add_timeout_option,
    aws_client,
    bounded,
    fail,
    require_table,
    run_command,
)
from worker.status.codec import decode_item

#: The order keys are printed in; any others follow alphabetically.
ORDER = (
    "RequestId",
    "Status",
    "CampaignId",
    "DestinationPhoneNumber",
    "OriginationIdentity",
    "DryRun",
    "MessageId",
    "ErrorCode",
    "ErrorReason",
    "ErrorMessage",
    "DeliveryStatus",
    "DeliveryEvent",
    "DeliveryReason",
    "DeliveryUpdatedAt",
    "DeliveredAt",
    "PriceUsd",
    "CarrierFeeUsd",
    "ReservedParts",
    "MessageParts",
    "IsoCountryCode",
    "AmbiguousAt",
    "Attempts",
    "ReceiveCount",
    "SqsMessageId",
    "CreatedAt",
    "SentAt",
    "UpdatedAt",
    "LeaseUntil",
    "LeaseToken",
    "ExpiresAt",
)
_EPOCH_S = {"ExpiresAt"}
_EPOCH_MS = {"LeaseUntil", "AmbiguousAt"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id", metavar="REQUEST_ID", help="the request's RequestId")
    add_table_option(parser)
    add_region_option(parser)
    add_timeout_option(parser)
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument(
        "--show-personal-data",
        action="store_true",
        help="print phone numbers whole (masked by default: +1***00)",
    )


def mask_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record fit for a terminal: the destination and phone-number identities masked,
    and any phone-number-shaped text in other values."""
    masked: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, str):
            if key == "DestinationPhoneNumber":
                value = mask_phone(value)
            elif key == "OriginationIdentity":
                value = mask_identity(value)
            else:
                value = mask_text(value, bare_digits=True)  # older rows: unmasked
        masked[key] = value
    return masked


def _ordered(record: dict[str, Any]) -> list[str]:
    rank = {key: i for i, key in enumerate(ORDER)}
    return sorted(record, key=lambda k: (rank.get(k, len(ORDER)), k))


def _show(key: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, set):
        text = ", ".join(sorted(str(v) for v in value))
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    if isinstance(value, int) and not isinstance(value, bool) and key in _EPOCH_S | _EPOCH_MS:
        seconds = value / 1000 if key in _EPOCH_MS else value
        when = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
        text += f"  ({when.replace('+00:00', 'Z')})"
    return text


def format_record(record: dict[str, Any]) -> str:
    """Aligned ``key: value`` lines."""
    keys = _ordered(record)
    width = max(len(k) for k in keys) + 1
    return "\n".join(f"{k + ':':<{width}} {_show(k, record[k])}" for k in keys)


async def fetch_record(client: Any, table: str, request_id: str) -> dict[str, Any] | None:
    response = await client.get_item(
        TableName=table, Key={"RequestId": {"S": request_id}}, ConsistentRead=True
    )
    item = response.get("Item")
    return decode_item(item) if item else None


async def _status(args: argparse.Namespace, table: str) -> int:
    async with aws_client("dynamodb", args.region, args.timeout) as ddb:
        record = await bounded(fetch_record(ddb, table, args.request_id), ddb, args.timeout)
    if record is None:
        return fail(
            f"no record for RequestId {args.request_id!r} in table {table!r}: the worker writes "
            "one when it first processes a request, so either it has not reached a worker yet "
            "(still in the queue), or the RequestId or table is different. A request sent "
            "without RequestId is recorded under its SQS message id."
        )
    if not args.show_personal_data:
        record = mask_record(record)
    if args.json:
        print(json.dumps(record, sort_keys=True, default=_json_default))
    else:
        print(format_record(record))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, set):
        return sorted(value, key=str)
    return str(value)


def handle(args: argparse.Namespace) -> int:
    try:
        table = require_table(args)
    except OpsError as exc:
        return fail(str(exc), exc.exit_code)
    if not args.request_id:
        return fail("REQUEST_ID is empty: pass the request's RequestId", 2)
    return run_command(_status(args, table), table=table)
