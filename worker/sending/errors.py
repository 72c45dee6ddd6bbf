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
    CHANNEL = "channel"  # one channel can't send (its monthly spend limit): pause it


PERMANENT_CODES = frozenset(
    {"ValidationException", "ConflictException", "ResourceNotFoundException"}
)
# Credentials that stopped working are account-wide too: no request would succeed.
ACCOUNT_CODES = frozenset({"ServiceQuotaExceededException"}) | CREDENTIAL_CODES
#: ServiceQuotaExceededException Reasons that stop one channel, by the channel they name.
SPEND_LIMIT_CHANNELS = {
    "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT": "SMS",
    "MONTHLY_SPEND_LIMIT_REACHED_FOR_MEDIA": "MMS",
}
#: AccessDeniedException Reasons that mean the account itself cannot send (named in the
#: cool-down's reason, so logs, metrics and /readyz say so).
ACCOUNT_STATE_REASONS = ("ACCOUNT_DISABLED", "INSUFFICIENT_ACCOUNT_REPUTATION")


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

    @property
    def paused_channel(self) -> str | None:
        """The channel this error pauses (a monthly spend limit reached), if any."""
        if self.kind is not ErrorKind.CHANNEL or self.reason is None:
            return None
        return SPEND_LIMIT_CHANNELS.get(self.reason)

    @property
    def cooldown_reason(self) -> str | None:
        """What the account-wide cool-down says it is for: the code, with the Reason when
        the account itself is disabled; None when this error starts no cool-down."""
        if self.kind is not ErrorKind.ACCOUNT:
            return None
        if self.reason in ACCOUNT_STATE_REASONS:
            return f"{self.code}:{self.reason}"
        return self.code


def classify(exc: BaseException) -> SendError | None:
    """Map an exception from a send call to a :class:`SendError`; None if not a send error."""
    if isinstance(exc, ClientError):
        code = error_code(exc) or "UnknownError"
        message = error_field(exc, "Message") or ""
        reason = exc.response.get("Reason") or error_field(exc, "Reason")
        status = http_status(exc)
        if code in PERMANENT_CODES:
            kind = ErrorKind.PERMANENT
        elif code == "ServiceQuotaExceededException" and str(reason) in SPEND_LIMIT_CHANNELS:
            kind = ErrorKind.CHANNEL
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
