"""DynamoDB attribute values <-> Python, for the few types the status record uses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def encode_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": str(value)}  # a StrEnum (a Status) as its plain value
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {str(k): encode_value(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [encode_value(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def decode_value(value: dict[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    if kind == "S":
        return raw
    if kind == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "BOOL":
        return bool(raw)
    if kind == "NULL":
        return None
    if kind == "M":
        return decode_item(raw)
    if kind == "L":
        return [decode_value(v) for v in raw]
    if kind in ("SS", "NS"):
        return set(raw)
    return raw


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: decode_value(value) for key, value in item.items()}
