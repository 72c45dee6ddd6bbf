"""Which dependencies (DynamoDB, SQS, the SMS API) are failing, and since when.

Every call site that talks to a dependency reports the result here: ``ok`` when the service
answered (a refused condition or a validation error is an answer), ``failed`` when it did not
(connection errors, timeouts, 5xx, throttling that outlasted the client's retries). A
dependency is *failing* from its first failure after a success until its next success.

Readers: ``/readyz`` goes 503 while a dependency has been failing for longer than the
threshold and comes back by itself; the pollers pause receiving while DynamoDB fails (every
message would only burn a receive), letting one probe message through now and then.

Every failed call is also counted by dependency, operation and error code (:meth:`count`),
refused or not: ``sms_worker_dependency_failures_total`` reads the counts at scrape time, so
a failure costs one dictionary increment and a success nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.logs import get_logger

log = get_logger(__name__)

DYNAMODB = "dynamodb"
SQS = "sqs"
SMS = "sms"
DEPENDENCIES = (DYNAMODB, SQS, SMS)
#: Distinct (dependency, operation, code) series at most; later codes are counted as "other".
FAILURE_SERIES_MAX = 100


@dataclass(slots=True)
class _State:
    recovered: asyncio.Event = field(default_factory=asyncio.Event)  # set while answering
    failing_since: float | None = None
    last_error: str | None = None
    errors_total: int = 0


@dataclass
class DependencyHealth:
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=lambda: {d: _State() for d in DEPENDENCIES})
    #: failed calls by (dependency, operation, error code), answered or not
    failures: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for state in self._states.values():
            state.recovered.set()

    def ok(self, dependency: str) -> None:
        state = self._states[dependency]
        if state.failing_since is not None:
            log.info(
                "dependency_recovered",
                dependency=dependency,
                failing_for_s=round(self.clock() - state.failing_since, 1),
            )
            state.failing_since = None
            state.recovered.set()

    def failed(self, dependency: str, error: str) -> None:
        state = self._states[dependency]
        state.errors_total += 1
        state.last_error = error
        if state.failing_since is None:
            state.failing_since = self.clock()
            state.recovered.clear()
            log.warning(
                "dependency_failing",
                dependency=dependency,
                error=error,
                effect="the worker keeps what it holds and retries; see the failure semantics "
                "in docs/failure-semantics.md",
            )

    def count(self, dependency: str, operation: str, code: str) -> None:
        """Count one failed call (``code``: the API error code, else the exception class)."""
        key = (dependency, operation, code)
        if key not in self.failures and len(self.failures) >= FAILURE_SERIES_MAX:
            key = (dependency, operation, "other")
        self.failures[key] += 1

    def failing(self, dependency: str) -> bool:
        return self._states[dependency].failing_since is not None

    def failing_for_s(self, dependency: str) -> float:
        since = self._states[dependency].failing_since
        return 0.0 if since is None else self.clock() - since

    def errors_total(self, dependency: str) -> int:
        return self._states[dependency].errors_total

    def unready(self, threshold_s: float) -> list[str]:
        """``dependency:error`` for each dependency failing for longer than ``threshold_s``."""
        return [
            f"{name}_failing:{state.last_error}"
            for name, state in self._states.items()
            if state.failing_since is not None and self.clock() - state.failing_since > threshold_s
        ]

    async def wait_recovered(self, dependency: str, timeout_s: float) -> None:
        """Return when ``dependency`` is no longer failing, or after ``timeout_s``."""
        state = self._states[dependency]
        if state.failing_since is None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await state.recovered.wait()
        except TimeoutError:
            return
