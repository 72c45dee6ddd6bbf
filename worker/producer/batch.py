"""One ``SendMessageBatch`` of up to 10 bodies, with retries of what failed transiently.

What is retried (exponential backoff, full jitter, ``max_attempts`` calls in all): the
entries SQS lists in ``Failed`` with ``SenderFault`` false, entries missing from the answer,
and the whole call after throttling, a 5xx, a timeout or a connection error. What is not:
entries failed with ``SenderFault`` true and calls refused with another 4xx (reported at
once), and errors about the queue or the credentials, which stop the whole run
(:class:`QueueUnavailable`): every further batch would fail the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from worker.aws.errors import CREDENTIAL_CODES, THROTTLING_CODES, error_field, http_status
from worker.backoff import compute_backoff_s
from worker.masking import mask_text
from worker.producer.outcomes import (
    KMS_CODES,
    QUEUE_MISSING_CODES,
    EntryFailure,
    QueueUnavailable,
    unavailable,
)

MAX_BATCH_ENTRIES = 10
#: SQS limits a batch's bodies to 256 KiB on queues that keep the old message size limit.
MAX_BATCH_BYTES = 256 * 1024
_MESSAGE_MAX = 300

_FATAL = QUEUE_MISSING_CODES | CREDENTIAL_CODES | KMS_CODES
_THROTTLED = THROTTLING_CODES | {
    "KmsThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
}


class Kind(Enum):
    TRANSIENT = "transient"  # retry with backoff
    REJECTED = "rejected"  # this call's entries failed, the next call may work
    FATAL = "fatal"  # no call to this queue will work


@dataclass(frozen=True, slots=True)
class Entry:
    body: str
    request_id: str | None
    tag: Hashable  # the caller's reference (the CLI's line number), given back on failure

    @property
    def size(self) -> int:
        return len(self.body.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5  # calls per entry, the first included
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
        return compute_backoff_s(attempt, self.backoff_base_s, self.backoff_max_s)


@dataclass
class BatchOutcome:
    sent: int = 0
    failures: list[EntryFailure] = field(default_factory=list)
    fatal: QueueUnavailable | None = None


def _clean(message: object) -> str:
    """An AWS error message fit for logs: phone-number-shaped runs masked, short."""
    text = " ".join(str(message or "").split())
    return mask_text(text[:_MESSAGE_MAX])


def classify(exc: BaseException) -> tuple[Kind, str, str]:
    """Kind, code and (masked) message of a failed call."""
    if isinstance(exc, ClientError):
        code = error_field(exc, "Code") or "Unknown"
        status = http_status(exc)
        message = _clean(error_field(exc, "Message"))
        fatal = {code, error_field(exc, "QueryErrorCode") or code} & _FATAL
        if fatal:
            return Kind.FATAL, min(fatal), message
        if code in _THROTTLED or status >= 500 or status == 429:
            return Kind.TRANSIENT, code, message
        return Kind.REJECTED, code, message
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return Kind.FATAL, type(exc).__name__, _clean(exc)
    if isinstance(exc, BotoConnectionError | HTTPClientError | aiohttp.ClientError | OSError):
        return Kind.TRANSIENT, type(exc).__name__, _clean(exc)
    if isinstance(exc, TimeoutError):
        return Kind.TRANSIENT, "Timeout", "the call timed out"
    if isinstance(exc, BotoCoreError):
        return Kind.REJECTED, type(exc).__name__, _clean(exc)
    return Kind.REJECTED, type(exc).__name__, "unexpected error; report this"


async def send_batch(
    client: Any, queue_url: str, entries: Sequence[Entry], policy: RetryPolicy
) -> BatchOutcome:
    """Send ``entries`` (at most 10) with one call, then retry what failed transiently."""
    outcome = BatchOutcome()
    pending = {str(index): entry for index, entry in enumerate(entries)}
    last: dict[str, tuple[str, str]] = {}
    attempt = 0
    while pending:
        attempt += 1
        if attempt > 1:
            await asyncio.sleep(policy.delay(attempt - 1))
        batch = [{"Id": key, "MessageBody": entry.body} for key, entry in pending.items()]
        try:
            response = await client.send_message_batch(QueueUrl=queue_url, Entries=batch)
        except Exception as exc:
            kind, code, message = classify(exc)
            if kind is Kind.FATAL:
                outcome.fatal = unavailable(code, message)
            if kind is not Kind.TRANSIENT or attempt >= policy.max_attempts:
                _fail(outcome, pending, dict.fromkeys(pending, (code, message)), attempt)
                return outcome
            last = dict.fromkeys(pending, (code, message))
            continue
        for success in response.get("Successful", []):
            if pending.pop(str(success.get("Id")), None) is not None:
                outcome.sent += 1
        retry: dict[str, Entry] = {}
        for failed in response.get("Failed", []):
            key = str(failed.get("Id"))
            entry = pending.pop(key, None)
            if entry is None:
                continue
            reason = (str(failed.get("Code") or "Unknown"), _clean(failed.get("Message")))
            if failed.get("SenderFault", True):
                _fail(outcome, {key: entry}, {key: reason}, attempt)
            else:
                retry[key], last[key] = entry, reason
        for key, entry in pending.items():  # neither succeeded nor failed: ask again
            retry[key] = entry
            last[key] = ("MissingFromResponse", "SQS did not report on this entry")
        pending = retry
        if pending and attempt >= policy.max_attempts:
            _fail(outcome, pending, last, attempt)
            return outcome
    return outcome


def _fail(
    outcome: BatchOutcome,
    entries: dict[str, Entry],
    reasons: dict[str, tuple[str, str]],
    attempts: int,
) -> None:
    for key, entry in entries.items():
        code, message = reasons[key]
        outcome.failures.append(EntryFailure(entry.tag, entry.request_id, code, message, attempts))
