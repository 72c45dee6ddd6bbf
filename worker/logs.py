"""Structured logging: one event per lifecycle step, fixed keys, no personal data.

Context (request id, SQS message id, receive count, identity) is bound through
``structlog.contextvars`` by the send handler, so every event of one request carries it.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

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


class SafeStream:
    """The log stream: a write that fails (a broken pipe, a closed stream, a full disk) is
    dropped and counted, never raised into the caller, so no log call can change what the
    worker does. Lines go straight to the file descriptor (nothing is left in a buffer for
    the interpreter's exit flush to fail on); once the reader is gone for good (a broken
    pipe, a closed descriptor) the descriptor is pointed at /dev/null and writes stop."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self.dropped = 0  # lines that could not be written
        self.gone = False  # the reader is gone for good: nothing is written any more
        try:
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError, AttributeError):
            self._fd = None  # not a real file (a test's capture): write through the stream

    def write(self, text: str) -> int:
        if self.gone:
            self.dropped += 1
            return len(text)
        try:
            if self._fd is None:
                self._stream.write(text)
                self._stream.flush()
            else:
                view = memoryview(text.encode(self._encoding, "backslashreplace"))
                while view:
                    view = view[os.write(self._fd, view) :]
        except (OSError, ValueError) as exc:
            self.dropped += 1
            if isinstance(exc, ValueError) or exc.errno in (errno.EPIPE, errno.EBADF):
                self._give_up()
        return len(text)

    def flush(self) -> None:
        """Each write is already out (or dropped)."""

    def _give_up(self) -> None:
        self.gone = True
        if self._fd is None:
            return
        try:  # anything else still writing to this descriptor (a last traceback) must not fail
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._fd)
            os.close(devnull)
        except OSError:
            pass


_stream: SafeStream | None = None


def dropped_log_lines() -> int:
    """Log lines the stream could not write since logging was configured."""
    return _stream.dropped if _stream is not None else 0


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog for the process. ``fmt``: 'json', 'console' or 'auto'."""
    global _stream
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    _stream = SafeStream(sys.stderr)
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
        # WriteLogger only calls write() and flush().
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _stream)),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
