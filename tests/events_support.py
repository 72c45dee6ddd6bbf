"""Delivery event bodies for tests: one event of the API's shape, in each of the three
envelopes an events queue receives (raw, SNS, EventBridge)."""

from __future__ import annotations

import json
from typing import Any

ENVELOPES = ("raw", "sns", "eventbridge")


def event(event_type: str, request_id: str = "req-1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": 1_767_225_600_000,
        "isFinal": event_type.endswith(("DELIVERED", "SUCCESSFUL")),
        "originationPhoneNumber": "+18005550100",
        "destinationPhoneNumber": "+12065550100",
        "isoCountryCode": "US",
        "messageId": "mid-1",
        "messageStatus": event_type.split("_", 1)[1],
        "messageStatusDescription": "described",
        "context": {"sms-worker:RequestId": request_id, "orderId": "o-1"},
        "totalMessageParts": 1,
        "totalMessagePrice": 0.00581,
        "totalCarrierFee": "0.00302",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def wrap(envelope: str, inner: dict[str, Any]) -> str:
    if envelope == "raw":
        return json.dumps(inner)
    if envelope == "sns":
        return json.dumps(
            {
                "Type": "Notification",
                "MessageId": "sns-1",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:sms-events",
                "Message": json.dumps(inner),
                "Timestamp": "2026-01-01T00:00:00.000Z",
            }
        )
    kind = "Media" if inner["eventType"].startswith("MEDIA_") else "Text"
    return json.dumps(
        {
            "version": "0",
            "source": "aws.sms-voice",
            "detail-type": f"{kind} Message Delivery Status Updated",
            "detail": inner,
        }
    )
