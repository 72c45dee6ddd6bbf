"""The send handler's observers: metrics, logs and campaign counters hear one outcome event,
and one that fails never stops the others (nor the flow)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from worker.handlers.send.decide import RETRIES_EXHAUSTED, Kind
from worker.handlers.send.events import (
    CountersListener,
    Listeners,
    LogListener,
    MetricsListener,
    OutcomeEvent,
)
from worker.metrics import Metrics
from worker.status.counters import CampaignCounters
from worker.status.model import Outcome, RecordFields, Status

FIELDS = RecordFields("r-1", "m-1", 1, campaign_id="c-1", destination="+12065550100")


@pytest.fixture(autouse=True)
def _reset_structlog() -> Any:
    yield
    structlog.reset_defaults()


def failed(code: str) -> Outcome:
    return Outcome(Status.FAILED, error_code=code, error_reason="R", error_message="m")


def test_metrics_count_each_kind_once() -> None:
    metrics = Metrics()
    listener = MetricsListener(metrics)
    for event in (
        OutcomeEvent(Kind.SENT, FIELDS, Outcome(Status.SENT)),
        OutcomeEvent(Kind.SENT, FIELDS, Outcome(Status.SENT)),
        OutcomeEvent(Kind.FAILED, FIELDS, failed("ValidationException")),
        OutcomeEvent(Kind.EXHAUSTED, FIELDS, failed(RETRIES_EXHAUSTED)),
        OutcomeEvent(Kind.RETRYING, FIELDS, Outcome(Status.RETRYING, "ThrottlingException")),
        OutcomeEvent(Kind.DUPLICATE, FIELDS),
        OutcomeEvent(Kind.STORE_UNAVAILABLE, FIELDS),
        OutcomeEvent(Kind.CLAIMED, FIELDS),
    ):
        listener.on_outcome(event)
    assert metrics.sent == 2 and metrics.duplicates == 1 and metrics.store_errors == 1
    assert metrics.failed == {"ValidationException": 1, RETRIES_EXHAUSTED: 1}
    assert metrics.retrying == {"ThrottlingException": 1}


async def test_counters_record_only_final_statuses_written() -> None:
    counters = CampaignCounters(client=None, table="t", flush_interval_s=60)
    listener = CountersListener(counters)
    listener.on_outcome(OutcomeEvent(Kind.SENT, FIELDS, Outcome(Status.SENT)))
    listener.on_outcome(OutcomeEvent(Kind.EXPIRED, FIELDS, Outcome(Status.EXPIRED)))
    listener.on_outcome(OutcomeEvent(Kind.FAILED, FIELDS, failed("ConflictException")))
    # Not final, or nothing written: not counted.
    listener.on_outcome(OutcomeEvent(Kind.RETRYING, FIELDS, Outcome(Status.RETRYING, "X")))
    listener.on_outcome(OutcomeEvent(Kind.DUPLICATE, FIELDS))
    listener.on_outcome(
        OutcomeEvent(Kind.SENT, RecordFields("r-2", "m-2", 1), Outcome(Status.SENT))
    )
    pending = counters.pending["c-1"]
    assert pending[Status.SENT] == 1 and pending[Status.EXPIRED] == 1
    assert pending[Status.FAILED] == 1 and Status.RETRYING not in pending


def test_log_lines_have_fixed_keys_and_no_personal_data() -> None:
    # capture_logs, not configure_logging: the module's logger must not be cached with a
    # configuration later tests' captures would not see.
    listener = LogListener()
    with capture_logs() as lines:
        listener.on_outcome(OutcomeEvent(Kind.SENT, FIELDS, Outcome(Status.SENT), {"attempt": 1}))
        listener.on_outcome(OutcomeEvent(Kind.EXHAUSTED, FIELDS, failed(RETRIES_EXHAUSTED)))
        listener.on_outcome(OutcomeEvent(Kind.COOLDOWN, FIELDS))  # no line of its own
    assert [(e["event"], e["log_level"]) for e in lines] == [
        ("sent", "info"),
        ("failed", "warning"),
    ]
    assert lines[1]["error_code"] == RETRIES_EXHAUSTED and lines[0]["attempt"] == 1
    assert "5550100" not in json.dumps(lines)


def test_a_failing_listener_does_not_stop_the_others() -> None:
    class Broken:
        def on_outcome(self, event: OutcomeEvent) -> None:
            raise BrokenPipeError("log shipper gone")

    metrics = Metrics()
    Listeners(Broken(), MetricsListener(metrics)).emit(OutcomeEvent(Kind.SENT, FIELDS))
    assert metrics.sent == 1


def test_counters_count_a_replayed_request_once() -> None:
    """Counted FAILED/RETRIES_EXHAUSTED, then replayed and SENT: the re-opening claim un-counts
    the failure, the SENT counts; done stays one."""
    counters = CampaignCounters(client=None, table="t", flush_interval_s=60)
    listener = CountersListener(counters)
    listener.on_outcome(OutcomeEvent(Kind.EXHAUSTED, FIELDS, failed(RETRIES_EXHAUSTED)))
    listener.on_outcome(OutcomeEvent(Kind.CLAIMED, FIELDS, reopened=True))
    assert counters.pending["c-1"][Status.FAILED] == 0
    listener.on_outcome(OutcomeEvent(Kind.SENT, FIELDS, Outcome(Status.SENT)))
    pending = counters.pending["c-1"]
    assert pending[Status.SENT] == 1 and pending[Status.FAILED] == 0
    assert pending["FAILED#RETRIES_EXHAUSTED"] == 0
    # Replayed once more and past its NotAfter: EXPIRED written over the exhausted record.
    listener.on_outcome(OutcomeEvent(Kind.EXHAUSTED, FIELDS, failed(RETRIES_EXHAUSTED)))
    listener.on_outcome(OutcomeEvent(Kind.EXPIRED, FIELDS, Outcome(Status.EXPIRED), reopened=True))
    pending = counters.pending["c-1"]
    assert pending[Status.FAILED] == 0 and pending[Status.EXPIRED] == 1
