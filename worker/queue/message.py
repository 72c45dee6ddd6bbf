"""One received SQS message, as a handler sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    # The producer's trace context (traceparent, tracestate, AWSTraceHeader), when tracing
    # asked SQS for it and the message carries one.
    trace_carrier: dict[str, str] | None = None
    sent_timestamp: str | None = None  # epoch ms, as SQS sends it; parsed only when sampled

    @classmethod
    def from_sqs(cls, raw: dict[str, Any]) -> QueueMessage:
        attributes = raw.get("Attributes") or {}
        carrier: dict[str, str] | None = None
        if "AWSTraceHeader" in attributes or "MessageAttributes" in raw:
            carrier = {
                k: str(v.get("StringValue", ""))
                for k, v in (raw.get("MessageAttributes") or {}).items()
            }
            if "AWSTraceHeader" in attributes:
                carrier["AWSTraceHeader"] = str(attributes["AWSTraceHeader"])
        return cls(
            message_id=str(raw["MessageId"]),
            receipt_handle=str(raw["ReceiptHandle"]),
            body=str(raw.get("Body", "")),
            receive_count=int(attributes.get("ApproximateReceiveCount") or 1),
            trace_carrier=carrier,
            sent_timestamp=attributes.get("SentTimestamp"),
        )
