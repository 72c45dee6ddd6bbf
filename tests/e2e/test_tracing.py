"""Optional tracing: a span per message continuing the producer's trace, real servers.

The spans go to the OpenTelemetry SDK's in-memory exporter (the SDK is real; nothing of AWS
is replaced). Two producers' ways of carrying a trace: a W3C ``traceparent`` message
attribute, and SQS's ``AWSTraceHeader`` system attribute (X-Ray's format).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import Aws, Env, Sandbox, make_settings, request, running_worker, table_items, wait_for

from worker.observe.tracing import parent_context

EXPORTER = InMemorySpanExporter()
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
W3C = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
XRAY_TRACE = "5759e988bd862e3fe1be46a994272793"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture(scope="module", autouse=True)
def _provider() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


def test_parent_context_reads_both_carriers() -> None:
    class Message:
        def __init__(self, carrier: dict[str, str] | None) -> None:
            self.trace_carrier = carrier

    def trace_id(carrier: dict[str, str] | None) -> str | None:
        ctx = parent_context(Message(carrier))
        if ctx is None:
            return None
        return format(trace.get_current_span(ctx).get_span_context().trace_id, "032x")

    assert trace_id({"traceparent": W3C}) == TRACE_ID
    assert trace_id({"AWSTraceHeader": XRAY}) == XRAY_TRACE
    assert trace_id({"AWSTraceHeader": "garbage"}) is None and trace_id(None) is None


async def test_a_span_per_message_continues_the_producers_trace(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    EXPORTER.clear()
    entries: list[dict[str, Any]] = [
        {
            "Id": "0",
            "MessageBody": json.dumps(request(1)),
            "MessageAttributes": {"traceparent": {"DataType": "String", "StringValue": W3C}},
        },
        {"Id": "1", "MessageBody": json.dumps(request(3, DestinationPhoneNumber="12"))},
    ]
    await aws.sqs.send_message_batch(QueueUrl=env.queue_url, Entries=entries)
    # (moto keeps a system attribute from SendMessage, not from SendMessageBatch)
    await aws.sqs.send_message(
        QueueUrl=env.queue_url,
        MessageBody=json.dumps(request(2)),
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": XRAY}},
    )
    async with running_worker(make_settings(env, tracing="otel")):

        async def finished() -> Any:
            spans = EXPORTER.get_finished_spans()
            return len(spans) >= 3 and spans

        spans = await wait_for(finished, timeout_s=30)
    by_request = {s.attributes["sms_worker.request_id"]: s for s in spans}
    sent, xray, invalid = by_request["req-1"], by_request["req-2"], by_request["req-3"]
    assert format(sent.context.trace_id, "032x") == TRACE_ID
    assert sent.parent is not None and format(sent.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert format(xray.context.trace_id, "032x") == XRAY_TRACE
    assert [e.name for e in sent.events] == ["claimed", "sent"]
    assert sent.attributes["sms_worker.outcome"] == "sent"
    assert invalid.attributes["sms_worker.outcome"] == "failed"
    assert invalid.events[0].attributes["error_code"] == "INVALID_REQUEST"
    # Ids and outcomes only: no phone number, body or Context reaches a span.
    dumped = json.dumps([s.to_json() for s in spans])
    # The numbers' digits (+1206555..., +18005550100) and the bodies: never unmasked. (Not a
    # bare "555": a random message id may hold it.)
    assert "1206555" not in dumped and "8005550" not in dumped and "hello" not in dumped
    items = await table_items(aws.ddb, env.table)
    assert items["req-1"]["Status"] == "SENT" and items["req-2"]["Status"] == "SENT"
