"""What became of enqueued requests, and the errors that stop a run."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

QUEUE_MISSING_CODES = frozenset(
    {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "InvalidAddress"}
)
KMS_CODES = frozenset(
    {
        "KmsAccessDenied",
        "KmsDisabled",
        "KmsInvalidKeyUsage",
        "KmsInvalidState",
        "KmsNotFound",
        "KmsOptInRequired",
    }
)


@dataclass(frozen=True, slots=True)
class EntryFailure:
    """A request that was not enqueued: its tag and RequestId, the last error, calls made.

    ``message`` is SQS's own explanation with phone-number-shaped text masked. ``stopped``:
    the run had stopped on a :class:`QueueUnavailable` error (which says what to fix).
    """

    tag: Hashable
    request_id: str | None
    code: str
    message: str
    attempts: int
    stopped: bool = False


@dataclass
class EnqueueResult:
    """Counts of one :class:`~worker.producer.Enqueuer` (live while it runs)."""

    enqueued: int = 0
    failed: int = 0
    failures: list[EntryFailure] = field(default_factory=list)  # the first ones, in order
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every request put was enqueued."""
        return self.failed == 0

    @property
    def rate(self) -> float:
        """Requests enqueued per second."""
        return self.enqueued / self.elapsed_s if self.elapsed_s > 0 else 0.0


class EnqueueError(Exception):
    """Base of the producer's errors about the queue (not about one request)."""


class QueueUnavailable(EnqueueError):
    """The queue cannot be written to at all (missing, forbidden, no credentials or region).

    ``code`` is the AWS error code. Requests not yet enqueued were not (``result`` says how
    many were, when known); fix the cause and enqueue them again: a request with a RequestId
    is never sent twice by the worker.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
        self.result: EnqueueResult | None = None


def unavailable(code: str, message: str) -> QueueUnavailable:
    """The error that stops a run, saying what to check."""
    if code in QUEUE_MISSING_CODES:
        advice = (
            "the queue does not exist at this URL in this region: check the queue URL "
            "(--queue-url / SMS_WORKER_QUEUE_URL) and the region (--region / AWS_REGION)"
        )
    elif code in KMS_CODES:
        advice = (
            "the queue's KMS key cannot be used: allow kms:GenerateDataKey and kms:Decrypt "
            "on it, or check that the key is enabled"
        )
    elif code == "NoRegionError":
        advice = (
            "no AWS region is configured: pass one (--region, or region_name=) or set "
            "AWS_REGION / AWS_DEFAULT_REGION"
        )
    else:
        advice = (
            "the credentials are missing, were refused or may not send to this queue: check "
            "AWS_PROFILE or the credentials in use, and allow sqs:SendMessage on the queue"
        )
    detail = f" ({message})" if message else ""
    return QueueUnavailable(f"cannot enqueue: {code}{detail}; {advice}", code)
