"""One request's send: its channel's operation (``SendMediaMessage`` for MMS) with in-process
retries (tenacity).

Transient errors (throttling, 5xx, connection errors, timeouts) are retried with exponential
backoff and full jitter, within an attempt budget and a total time budget that both sit well
inside the claim's lease. The lease also bounds the waits for a rate-limit token between
retries: no call starts that could still be running when the lease ends (``deadline``), so
another worker can never claim a request whose call is still in flight here. Every call waits
for a token of its origination identity, and a throttle slows that identity down for every
task. botocore's own retries are off for this client (see :mod:`worker.aws.clients`), so the
two layers don't multiply.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from worker.aws.errors import describe, http_status
from worker.health import SMS, DependencyHealth
from worker.logs import get_logger
from worker.metrics import Metrics
from worker.model.channels import DEFAULT_CHANNEL, Channel
from worker.sending.errors import ErrorKind, SendError, classify
from worker.sending.limiter import Limiter
from worker.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: str | None
    error: SendError | None
    calls: int
    latency_ms: float  # of the last call

    @property
    def ok(self) -> bool:
        return self.message_id is not None


@dataclass(slots=True)
class SendProgress:
    """Where a send stands, readable by the send handler if the send is cancelled."""

    calls: int = 0
    in_call: bool = False
    last_error: SendError | None = None


class _CallFailed(Exception):
    def __init__(self, error: SendError) -> None:
        super().__init__(error.code)
        self.error = error


class _LeaseSpent(Exception):
    """No further call fits in the claim's lease (token wait included)."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _CallFailed) and exc.error.kind is ErrorKind.TRANSIENT


class Sender:
    def __init__(
        self,
        client: Any,
        limiter: Limiter,
        settings: Settings,
        metrics: Metrics,
        health: DependencyHealth | None = None,
    ) -> None:
        self._client = client
        self._health = health or DependencyHealth()
        self._limiter = limiter
        self._settings = settings
        self._metrics = metrics
        self._call_deadline_s = settings.send_timeout_s + settings.connect_timeout_s + 1.0

    async def send(
        self,
        params: dict[str, Any],
        identity: str,
        *,
        first_token_held: bool,
        progress: SendProgress | None = None,
        deadline: float | None = None,
        channel: Channel = DEFAULT_CHANNEL,
        tokens: int = 1,
    ) -> SendResult:
        """Send with retries; never raises for a send error (only for cancellation).

        ``params`` are ``channel.operation``'s arguments; ``identity`` is the rate-limit key
        (``ParsedRequest.rate_key``), ``tokens`` what each call reserves of it (an SMS's
        message parts). ``deadline`` (``time.monotonic()``): when the claim's
        lease ends. A retry whose token wait and call could not both end before it is not
        made; the last error stands."""
        s = self._settings
        limiter = self._limiter
        state = progress if progress is not None else SendProgress()
        latency_ms = 0.0
        operation = getattr(self._client, channel.method)  # e.g. send_media_message

        async def call_once() -> str:
            nonlocal latency_ms
            if state.calls > 0 or not first_token_held:
                budget_s = None
                if deadline is not None:
                    budget_s = deadline - time.monotonic() - self._call_deadline_s
                    if budget_s <= 0:
                        raise _LeaseSpent
                try:
                    async with asyncio.timeout(budget_s):
                        await limiter.reserve(identity, tokens)
                except TimeoutError:
                    raise _LeaseSpent from None
            state.calls += 1
            state.in_call = True
            self._metrics.send_calls += 1
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._call_deadline_s):
                    response = await operation(**params)
            except Exception as exc:
                state.in_call = False
                self._observe(exc)
                error = classify(exc)
                if error is None:
                    raise
                state.last_error = error
                if error.throttled:
                    self._metrics.throttled += 1
                    limiter.on_throttle(identity)
                raise _CallFailed(error) from exc
            finally:
                # A cancelled call leaves ``in_call`` set: the provider may have accepted it.
                elapsed_s = time.perf_counter() - started
                latency_ms = elapsed_s * 1000
                self._metrics.send_latency_s.observe(elapsed_s)
            state.in_call = False
            self._health.ok(SMS)
            return str(response["MessageId"])

        def before_sleep(state: RetryCallState) -> None:
            self._metrics.send_retries += 1
            exc = state.outcome.exception() if state.outcome else None
            code = exc.error.code if isinstance(exc, _CallFailed) else "unknown"
            log.info(
                "send_retry",
                attempt=state.attempt_number,
                error_code=code,
                backoff_ms=round((state.upcoming_sleep or 0) * 1000),
                identity_rate_mps=round(limiter.rate_mps(identity), 2),
            )

        # Under the confirm and never reclaim policies a call that may have been acted on
        # (no answer after the request was written) is not retried here: the send decision
        # records it as ambiguous instead (docs/events.md).
        resend = s.effective_reclaim_policy == "resend"

        def retryable(exc: BaseException) -> bool:
            if not _is_transient(exc):
                return False
            assert isinstance(exc, _CallFailed)
            return resend or not exc.error.ambiguous

        retrying = AsyncRetrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(s.retry_attempts) | stop_after_delay(s.retry_budget_s),
            wait=wait_random_exponential(
                multiplier=s.retry_backoff_base_s, max=s.retry_backoff_max_s
            ),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            message_id: str = await retrying(call_once)
        except _CallFailed as failed:
            return SendResult(None, failed.error, state.calls, latency_ms)
        except _LeaseSpent:
            log.info("send_retry_stopped", reason="lease", calls=state.calls)
            error = state.last_error or SendError(
                ErrorKind.TRANSIENT, "LeaseSpent", None, "no call fitted in the claim's lease"
            )
            return SendResult(None, error, state.calls, latency_ms)
        return SendResult(message_id, None, state.calls, latency_ms)

    def _observe(self, exc: Exception) -> None:
        """The SMS API answered (any 4xx, throttling included) or it did not (no connection,
        a timeout, 5xx)."""
        self._health.count(SMS, "send", describe(exc))
        if isinstance(exc, ClientError) and http_status(exc) < 500:
            self._health.ok(SMS)
        else:
            self._health.failed(SMS, describe(exc))
