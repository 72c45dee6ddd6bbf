"""Classify a send error by type: transient, permanent, or account-wide."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from worker.aws.errors import (
    CREDENTIAL_CODES,
    THROTTLING_CODES,
    error_code,
    error_field,
    http_status,
    is_ambiguous,
)
from worker.masking import mask_text


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"  # retry: in process, then across receives
    PERMANENT = "permanent"  # the request itself is wrong: FAILED, no retry
    ACCOUNT = "account"  # the whole account can't send now: cool down


PERMANENT_CODES = frozenset(
    {"ValidationException", "ConflictException", "ResourceNotFoundException"}
)
# Credentials that stopped working are account-wide too: no request would succeed.
ACCOUNT_CODES = frozenset({"ServiceQuotaExceededException"}) | CREDENTIAL_CODES


@dataclass(frozen=True, slots=True)
class SendError:
    """What went wrong with one send call, as the status table records it."""

    kind: ErrorKind
    code: str  # API exception name, or the transport error's class name
    reason: str | None  # the exception's ``Reason`` field, when the API gave one
    message: str
    answered: bool = True  # False: no answer at all (no connection, a timeout, a cut call)
    # No answer, and the request may have been written: the provider may have sent it
    # (:func:`worker.aws.errors.is_ambiguous`; the reclaim policy decides what follows).
    ambiguous: bool = False

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_CODES


def classify(exc: BaseException) -> SendError | None:
    """Map an exception from a send call to a :class:`SendError`; None if not a send error."""
    if isinstance(exc, ClientError):
        code = error_code(exc) or "UnknownError"
        message = error_field(exc, "Message") or ""
        reason = exc.response.get("Reason") or error_field(exc, "Reason")
        status = http_status(exc)
        if code in PERMANENT_CODES:
            kind = ErrorKind.PERMANENT
        elif code in ACCOUNT_CODES:
            kind = ErrorKind.ACCOUNT
        else:
            # Throttling, InternalServerException, any 5xx, and codes this version does not
            # know: retried, bounded by the redrive policy, never silently dropped.
            kind = ErrorKind.TRANSIENT
        if status >= 500 and code not in PERMANENT_CODES:
            kind = ErrorKind.TRANSIENT
        # The provider's message may echo the destination: it never reaches the table whole.
        masked = _provider_text(message, 500) or ""
        return SendError(kind, code, _provider_text(reason, 100), masked)
    if isinstance(
        exc,
        BotoConnectionError
        | HTTPClientError
        | ReadTimeoutError
        | aiohttp.ClientError
        | asyncio.TimeoutError
        | TimeoutError
        | ConnectionError,
    ):
        return SendError(
            ErrorKind.TRANSIENT, type(exc).__name__, None, _detail(exc), False, is_ambiguous(exc)
        )
    if isinstance(exc, BotoCoreError):
        return SendError(ErrorKind.TRANSIENT, type(exc).__name__, None, _detail(exc), False)
    return None


def _provider_text(text: object, limit: int) -> str | None:
    """The provider's words fit for the status table and logs: its ``Message`` may echo the
    destination (``+12065550100``, or ``12065550100`` or ``(206) 555-0100``), so every
    phone-number-shaped run is masked (with bare digit runs) before the text is cut, and the
    cut cannot leave a number half masked. None for no text."""
    if not text:
        return None
    return mask_text(str(text), bare_digits=True)[:limit]


def _detail(exc: BaseException) -> str:
    """A transport error's text (an endpoint URL, never the request): masked all the same."""
    return mask_text(str(exc))[:500]
