"""botocore's *standard* retry mode, for the JSON API client: botocore's own parts, not a copy.

A JSON API call decides whether and how long to wait before another attempt exactly as an
aiobotocore client in ``mode="standard"`` does, because it asks the same objects botocore's
``register_retry_handler`` builds: ``StandardRetryConditions`` (throttling and transient codes,
500/502/503/504, connection errors and timeouts, modelled retryable errors, the attempt
limit), ``ExponentialBackoff`` (full jitter, up to 20 s, the service's base scale and the
``x-amz-retry-after`` header) and a ``RetryQuota`` with its costs (a retry is only made while
the client's quota has capacity; a success gives some back). The one thing done differently
is waiting: botocore sleeps on its thread; here the caller awaits the delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.retries import quota, standard

# The JSON API client's error code for a DynamoDB answer whose x-amz-crc32 does not match;
# botocore's own checker (RetryDDBChecksumError) decides from the bytes and header to retry it.
CRC_MISMATCH = "CrcMismatch"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Wait ``delay_s``, then make another attempt (``retry``) or raise the error."""

    delay_s: float
    retry: bool


DONT_RETRY = RetryDecision(0.0, False)


@dataclass(frozen=True, slots=True)
class _HttpResponse:
    """What botocore's retry checkers read of an HTTP response."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""


class StandardRetries:
    """One per client, as botocore has one retry quota per client."""

    def __init__(self, service_model: Any, max_attempts: int) -> None:
        self._delays: list[float] = []
        adapter = standard.RetryEventAdapter()
        detector = standard.ThrottlingErrorDetector(adapter)
        self.quota = quota.RetryQuota()
        self._quota_checker = standard.RetryQuotaChecker(self.quota, detector)
        service_name = service_model.service_id.hyphenize()
        backoff_kwargs: dict[str, Any] = {}
        if getattr(standard, "NEW_RETRIES_ENABLED", False):
            backoff_kwargs = {"service_name": service_name, "throttling_detector": detector}
        self._backoff = standard.ExponentialBackoff(**backoff_kwargs)
        self._policy = standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=self._backoff,
        )
        self._handler = standard.RetryHandler(
            retry_policy=self._policy,
            retry_event_adapter=adapter,
            retry_quota=self._quota_checker,
            service_name=service_name,
            sleep=self._delays.append,  # botocore would sleep here; the caller awaits it
        )

    def decide(
        self,
        *,
        attempt: int,
        operation_model: Any,
        request_context: dict[str, Any],
        parsed: dict[str, Any] | None = None,
        exception: Exception | None = None,
        content: bytes = b"",
    ) -> RetryDecision:
        """What to do after attempt ``attempt`` failed (``parsed``: the error response)."""
        response = None
        if parsed is not None:
            metadata = parsed.get("ResponseMetadata", {})
            http = _HttpResponse(
                int(metadata.get("HTTPStatusCode") or 0),
                dict(metadata.get("HTTPHeaders") or {}),
                content,
            )
            response = (http, parsed)
        self._delays.clear()
        delay = self._handler.needs_retry(
            response=response,
            attempts=attempt,
            operation=operation_model,
            caught_exception=exception,
            request_dict={"context": request_context},
        )
        if delay is False and self._delays:
            # A long poll with the quota spent: botocore sleeps the delay, then gives up.
            return RetryDecision(self._delays[-1], False)
        if delay is None or delay is False:
            return DONT_RETRY
        return RetryDecision(float(delay), True)

    def succeeded(self, request_context: dict[str, Any]) -> None:
        """A 2xx answer: give the quota back as botocore's ``after-call`` hook does."""
        self._quota_checker.release_retry_quota(request_context, _HttpResponse(200))
