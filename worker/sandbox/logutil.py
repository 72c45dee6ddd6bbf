"""Masking for log lines, and a stderr structlog set-up for the standalone sandbox."""

from __future__ import annotations

import logging
import re
import sys

import structlog

_PHONE_LIKE = re.compile(r"\+?[0-9]{6,}")


def mask(value: str) -> str:
    """``+12065550100`` -> ``+1206***0100``: keep the first 5 and last 4 characters."""
    if len(value) <= 9:
        return "***"
    return f"{value[:5]}***{value[-4:]}"


def mask_identity(identity: str) -> str:
    """Mask an origination identity only when it is a phone number (keep pool IDs, ARNs)."""
    return mask(identity) if _PHONE_LIKE.fullmatch(identity) else identity


def configure_stderr_logging(level: int = logging.INFO) -> None:
    """Send structlog output to stderr as JSON lines, unless structlog is configured already.

    stdout is reserved for the one ``sandbox_ready`` line.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
