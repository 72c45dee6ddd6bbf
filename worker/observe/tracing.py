"""Optional tracing (``SMS_WORKER_TRACING=otel``, the ``otel`` extra): a span per message.

Each message handled gets one ``CONSUMER`` span, ``sms-worker process``, whose events are the
handler's outcome events (``claimed``, ``sent``, ``retrying``, ...), continuing the producer's
trace when the message carries one: a W3C ``traceparent`` message attribute, or SQS's
``AWSTraceHeader`` system attribute (X-Ray's format). The span holds ids and outcomes only,
never a phone number, a body or a Context value. Configure the SDK and exporter the standard
way (``OTEL_*`` variables, or a ``TracerProvider`` set by the application); with tracing off
nothing here is imported and no attribute is asked of SQS.
"""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from worker.handlers import Handler
from worker.handlers.held import HeldMessage
from worker.handlers.send.events import OutcomeEvent

#: What the consumer asks SQS for when tracing is on.
SYSTEM_ATTRIBUTES = ("AWSTraceHeader",)
MESSAGE_ATTRIBUTES = ("traceparent", "tracestate")

_XRAY = re.compile(
    r"Root=1-(?P<t1>[0-9a-f]{8})-(?P<t2>[0-9a-f]{24});Parent=(?P<p>[0-9a-f]{16})"
    r"(?:;Sampled=(?P<s>[01]))?"
)
_W3C = TraceContextTextMapPropagator()
#: Outcome-event keys safe on a span (ids, counts, codes; nothing from the request body).
_SAFE_KEYS = frozenset(
    {"attempt", "status", "now_status", "visible_in_s", "latency_ms", "op", "reason"}
)


def parent_context(message: Any) -> Any:
    """The producer's trace context carried by ``message`` (a ``QueueMessage``), or None."""
    carrier = getattr(message, "trace_carrier", None) or {}
    if "traceparent" in carrier:
        return _W3C.extract(carrier)
    header = carrier.get("AWSTraceHeader")
    if header and (m := _XRAY.search(header)):
        sampled = TraceFlags.SAMPLED if m["s"] != "0" else TraceFlags.DEFAULT
        span_context = SpanContext(
            trace_id=int(m["t1"] + m["t2"], 16),
            span_id=int(m["p"], 16),
            is_remote=True,
            trace_flags=TraceFlags(sampled),
        )
        return trace.set_span_in_context(NonRecordingSpan(span_context))
    return None


class TracedHandler:
    """A handler wrapped in a span per message (the runtime wraps each route's handler)."""

    def __init__(self, handler: Handler, route: str) -> None:
        self._handler = handler
        self._route = route
        self._tracer = trace.get_tracer("sms-worker")
        self.concluding = handler.concluding

    def abandon(self) -> None:
        self._handler.abandon()

    async def handle(self, held: HeldMessage) -> None:
        message = held.message
        with self._tracer.start_as_current_span(
            "sms-worker process",
            context=parent_context(message),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "aws_sqs",
                "messaging.operation": "process",
                "messaging.message.id": message.message_id,
                "sms_worker.route": self._route,
                "sms_worker.receive_count": message.receive_count,
            },
        ):
            await self._handler.handle(held)


class SpanListener:
    """Adds each outcome event to the current message's span."""

    def on_outcome(self, event: OutcomeEvent) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {
            k: v for k, v in event.detail.items() if k in _SAFE_KEYS and v is not None
        }
        if event.outcome is not None:
            attributes["status"] = str(event.outcome.status)
            if event.outcome.error_code:
                attributes["error_code"] = event.outcome.error_code
        if event.fields is not None:
            span.set_attribute("sms_worker.request_id", event.fields.request_id)
        span.add_event(event.kind.value, attributes)
        span.set_attribute("sms_worker.outcome", event.kind.value)
