"""One events-queue body -> a :class:`DeliveryEvent`, :class:`NotOurs` or :class:`Malformed`.

Three bodies carry an End User Messaging SMS/MMS delivery event (contract section 4):

- *raw*: the event itself (an SNS subscription with ``RawMessageDelivery=true``);
- *SNS envelope*: ``{"Type": "Notification", "Message": "<the event as a string>", ...}``;
- *EventBridge envelope*: ``{"source": "aws.sms-voice", "detail-type": "...", "detail":
  {the event}}``.

Never raises: whatever the body holds, the handler gets a result it can count and settle.
Nothing from the body (a number, a context value) is put into a ``Malformed``'s text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.model.rules import RESERVED_CONTEXT_KEY, TOKEN_PATTERN
from worker.status.delivery import DeliveryEvent
from worker.status.model import delivery_effect

RAW = "raw"
SNS = "sns"
EVENTBRIDGE = "eventbridge"


@dataclass(frozen=True, slots=True)
class Parsed:
    event: DeliveryEvent
    envelope: str  # raw | sns | eventbridge


@dataclass(frozen=True, slots=True)
class NotOurs:
    """A well-formed event naming no request of this worker (no reserved Context key)."""

    envelope: str
    event_type: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A body that is no delivery event; ``problem`` says what is wrong (no body content)."""

    problem: str
    envelope: str | None = None


Result = Parsed | NotOurs | Malformed


def _unwrap(obj: dict[str, Any]) -> tuple[str, object]:
    """(envelope, the event object) of one decoded body."""
    if obj.get("Type") == "Notification" and "Message" in obj:
        message = obj["Message"]
        if not isinstance(message, str):
            return SNS, None
        try:
            return SNS, json.loads(message)
        except ValueError:
            return SNS, None
    if "detail-type" in obj and "detail" in obj:
        return EVENTBRIDGE, obj["detail"]
    return RAW, obj


def _number(value: object) -> int | float | None:
    """A price, fee or part count as a number (the service writes numbers, sometimes as text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
        return int(number) if number == number.to_integral_value() else float(number)
    return None


def parse_event(body: str) -> Result:
    try:
        obj = json.loads(body)
    except ValueError:
        return Malformed("the body is not JSON")
    if not isinstance(obj, dict):
        return Malformed("the body is not a JSON object")
    envelope, event = _unwrap(obj)
    if not isinstance(event, dict):
        return Malformed(f"the {envelope} envelope holds no event object", envelope)
    event_type = event.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        return Malformed("the event has no eventType", envelope)
    status = delivery_effect(event_type)
    if status is None:
        return Malformed("the eventType is not a delivery event type this worker knows", envelope)
    context = event.get("context")
    request_id = context.get(RESERVED_CONTEXT_KEY) if isinstance(context, dict) else None
    if request_id is None:
        return NotOurs(envelope, event_type)
    if not isinstance(request_id, str) or not re.fullmatch(TOKEN_PATTERN, request_id):
        return Malformed(f"the context's {RESERVED_CONTEXT_KEY} is not a RequestId", envelope)
    message_id = event.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        return Malformed("the event has no messageId", envelope)
    timestamp = event.get("eventTimestamp")
    if isinstance(timestamp, str) and timestamp.isdigit():
        timestamp = int(timestamp)
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        return Malformed("the event has no eventTimestamp in epoch milliseconds", envelope)
    reason = event.get("messageStatusDescription")
    filled: dict[str, Any] = {}
    for attr, key in (
        ("PriceUsd", "totalMessagePrice"),
        ("CarrierFeeUsd", "totalCarrierFee"),
        ("MessageParts", "totalMessageParts"),
    ):
        number = _number(event.get(key))
        if number is not None:
            filled[attr] = number
    country = event.get("isoCountryCode")
    if isinstance(country, str) and country:
        filled["IsoCountryCode"] = country[:8]
    return Parsed(
        DeliveryEvent(
            request_id=request_id,
            event_type=event_type,
            status=status,
            message_id=message_id[:128],
            timestamp_ms=timestamp,
            reason=str(reason)[:500] if isinstance(reason, str) and reason else None,
            filled=filled,
        ),
        envelope,
    )
