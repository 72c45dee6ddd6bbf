"""Structured logging: one event per lifecycle step, fixed keys, no personal data.

Context (request id, SQS message id, receive count, identity) is bound through
``structlog.contextvars`` by the send handler, so every event of one request carries it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from worker.masking import mask_text

# Keys whose values are never logged at all.
_DROPPED_KEYS = frozenset({"MessageBody", "message_body", "body", "Context"})


def redact_personal_data(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: drop bodies, mask every phone-number-shaped string."""
    for key in list(event_dict):
        if key in _DROPPED_KEYS:
            event_dict[key] = "[redacted]"
            continue
        value = event_dict[key]
        if isinstance(value, str) and "+" in value:
            event_dict[key] = mask_text(value)
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog for the process. ``fmt``: 'json', 'console' or 'auto'."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
