"""Whether tracing is on, and what it adds: nothing is imported from OpenTelemetry when off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.handlers import Handler
from worker.settings import Settings


@dataclass(frozen=True, slots=True)
class Tracing:
    listeners: tuple[Any, ...] = ()
    system_attributes: tuple[str, ...] = ()
    message_attributes: tuple[str, ...] = ()
    enabled: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        if settings.tracing != "otel":
            return cls()
        try:
            from worker.observe import tracing
        except ImportError as exc:  # the otel extra is not installed
            from worker.runtime.startup import EX_CONFIG, StartupError

            raise StartupError(
                EX_CONFIG,
                "SMS_WORKER_TRACING=otel needs OpenTelemetry: pip install 'sms-worker[otel]' "
                "(or set SMS_WORKER_TRACING=off)",
                check="tracing",
            ) from exc
        return cls(
            (tracing.SpanListener(),),
            tracing.SYSTEM_ATTRIBUTES,
            tracing.MESSAGE_ATTRIBUTES,
            enabled=True,
        )

    def wrap(self, handler: Handler, route: str) -> Handler:
        if not self.enabled:
            return handler
        from worker.observe.tracing import TracedHandler

        return TracedHandler(handler, route)
