"""The send handler's decisions, row by row against the contract's outcome table
(docs/contract.md, "What happens to each request"). Pure functions: no servers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.handlers.held import Delete, HandBack, Release
from worker.handlers.send import decide as d
from worker.model import parse_request
from worker.sending.errors import ErrorKind, SendError
from worker.sending.sender import SendResult
from worker.status.model import Claim, ClaimRefused, Status

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def ctx(receive_count: int = 1, max_receive_count: int = 5, **kw: Any) -> d.Context:
    return d.Context(receive_count, max_receive_count, NOW, NOW_MS, **kw)


def parsed(**fields: Any) -> Any:
    body = {
        "RequestId": "r-1",
        "DestinationPhoneNumber": "+12065550100",
        "OriginationIdentity": "+18005550100",
        "MessageBody": "hello",
    } | fields
    return parse_request(json.dumps(body), sqs_message_id="m-1")


CLAIM = Claim("r-1", "token", 1, NOW_MS + 60_000)


def failed_send(kind: ErrorKind, code: str, *, answered: bool = True) -> SendResult:
    return SendResult(None, SendError(kind, code, "SOME_REASON", "detail", answered), 3, 10.0)


def test_sent_is_written_and_deleted() -> None:
    step = d.decide(ctx(), parsed(), CLAIM, SendResult("provider-id", None, 1, 5.0))
    assert isinstance(step, d.Decision)
    assert step.outcome is not None and step.outcome.status is Status.SENT
    assert step.message_id == "provider-id" and step.ack == Delete() and step.kind is d.Kind.SENT


def test_delivery_of_an_exhausted_request_is_not_a_duplicate() -> None:
    """A replay: the store re-opens a FAILED/RETRIES_EXHAUSTED record, so a refusal by one is
    never answered with a delete; an invalid copy refused by it is a duplicate (the record
    stays replayable)."""
    exhausted = {"Status": "FAILED", "ErrorCode": d.RETRIES_EXHAUSTED}
    step = d.refused(ctx(), ClaimRefused(exhausted))
    assert step.kind is d.Kind.LEASE_BUSY and isinstance(step.ack, HandBack)
    invalid_copy = d.refused(ctx(), ClaimRefused(exhausted, attempted=Status.FAILED))
    assert invalid_copy.kind is d.Kind.DUPLICATE and invalid_copy.ack == Delete()
    permanent = {"Status": "FAILED", "ErrorCode": "INVALID_REQUEST"}
    assert d.refused(ctx(), ClaimRefused(permanent)).kind is d.Kind.DUPLICATE


def test_dry_run_accepted_is_sent() -> None:
    step = d.decide(ctx(), parsed(DryRun=True), CLAIM, SendResult("dry-id", None, 1, 5.0))
    assert isinstance(step, d.Decision) and step.kind is d.Kind.SENT


@pytest.mark.parametrize("status", ["SENT", "FAILED", "EXPIRED"])
def test_duplicate_of_a_final_request_is_deleted_without_a_write(status: str) -> None:
    step = d.decide(ctx(), parsed(), ClaimRefused({"Status": status}))
    assert isinstance(step, d.Decision)
    assert step.outcome is None and step.ack == Delete() and step.kind is d.Kind.DUPLICATE
    assert step.seen_status == status


def test_live_claim_elsewhere_is_left_until_its_lease_passes() -> None:
    refused = ClaimRefused({"Status": "SENDING", "LeaseUntil": NOW_MS + 42_000})
    step = d.decide(ctx(), parsed(), refused)
    assert isinstance(step, d.Decision) and step.outcome is None
    assert step.ack == HandBack(43, "lease_busy") and step.kind is d.Kind.LEASE_BUSY


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"RequestId": "r-1", "Unknown": 1}),
        json.dumps({"RequestId": "r-1", "DestinationPhoneNumber": "12"}),
    ],
)
def test_invalid_body_is_failed_invalid_request_and_deleted(body: str) -> None:
    step = d.decide(ctx(), parse_request(body, sqs_message_id="m-9"))
    assert isinstance(step, d.Decision) and step.outcome is not None
    assert step.outcome.status is Status.FAILED
    assert step.outcome.error_code == d.INVALID_REQUEST and step.outcome.error_reason
    assert step.ack == Delete()


def test_not_after_passed_is_expired_and_deleted() -> None:
    past = (NOW - timedelta(minutes=1)).isoformat()
    step = d.decide(ctx(), parsed(NotAfter=past))
    assert isinstance(step, d.Decision) and step.outcome is not None
    assert step.outcome.status is Status.EXPIRED and step.ack == Delete()


def test_not_after_ahead_proceeds_to_the_claim_then_the_send() -> None:
    ahead = (NOW + timedelta(minutes=1)).isoformat()
    assert d.decide(ctx(), parsed(NotAfter=ahead)) is d.PROCEED
    assert d.decide(ctx(), parsed(NotAfter=ahead), CLAIM) is d.PROCEED


@pytest.mark.parametrize(
    "code", ["ValidationException", "ConflictException", "ResourceNotFoundException"]
)
def test_refused_by_the_api_is_failed_with_code_and_reason_and_deleted(code: str) -> None:
    step = d.decide(ctx(), parsed(), CLAIM, failed_send(ErrorKind.PERMANENT, code))
    assert isinstance(step, d.Decision) and step.outcome is not None
    assert (step.outcome.status, step.outcome.error_code) == (Status.FAILED, code)
    assert step.outcome.error_reason == "SOME_REASON" and step.ack == Delete()


@pytest.mark.parametrize(("receive_count", "ceiling_s"), [(1, 5), (2, 10), (3, 20), (4, 40)])
def test_transient_after_in_process_retries_is_retrying_with_a_growing_delay(
    receive_count: int, ceiling_s: int
) -> None:
    c = ctx(receive_count, 5, redelivery_base_delay_s=5, redelivery_max_delay_s=300)
    step = d.decide(c, parsed(), CLAIM, failed_send(ErrorKind.TRANSIENT, "ThrottlingException"))
    assert isinstance(step, d.Decision) and step.outcome is not None
    assert step.outcome.status is Status.RETRYING and step.kind is d.Kind.RETRYING
    assert step.ack == Release(ceiling_s)


def test_last_receive_still_transient_is_exhausted_and_left_for_the_dlq() -> None:
    step = d.send_failed(ctx(5, 5), SendError(ErrorKind.TRANSIENT, "InternalServerException",
                                               None, "boom"))  # fmt: skip
    assert step.outcome is not None and step.outcome.status is Status.FAILED
    assert step.outcome.error_code == d.RETRIES_EXHAUSTED
    assert step.outcome.error_reason == "InternalServerException"
    assert step.ack == Release(0) and step.kind is d.Kind.EXHAUSTED


@pytest.mark.parametrize("code", ["AccessDeniedException", "ServiceQuotaExceededException"])
def test_account_wide_error_is_retrying_and_starts_the_cooldown(code: str) -> None:
    c = ctx(1, 5, cooldown_s=120.0)
    step = d.decide(c, parsed(), CLAIM, failed_send(ErrorKind.ACCOUNT, code))
    assert isinstance(step, d.Decision) and step.outcome is not None
    assert step.outcome.status is Status.RETRYING and step.cooldown == code
    assert step.ack == Release(120)  # not visible before the cool-down ends


def test_sms_api_unreachable_on_the_last_receive_is_kept_not_exhausted() -> None:
    error = SendError(ErrorKind.TRANSIENT, "ConnectTimeoutError", None, "x", answered=False)
    step = d.send_failed(ctx(5, 5, sms_outage=True), error)
    assert step.outcome is not None and step.outcome.status is Status.RETRYING
    assert isinstance(step.ack, HandBack) and step.ack.reason == "sms_unavailable"
    # ... unless the worker is stopping: then it is exhausted, so the DLQ holds a final status.
    stopping = d.send_failed(ctx(5, 5, sms_outage=True, stopping=True), error)
    assert stopping.outcome is not None and stopping.outcome.error_code == d.RETRIES_EXHAUSTED


def test_dynamodb_failing_hands_back_within_the_visibility_timeout() -> None:
    back = d.store_failed(ctx(3), visibility_timeout_s=120, claim=None)
    assert back.reason == "store_unavailable" and 1 <= back.delay_s <= 120
    # With our claim standing, not before its lease has passed (60 s here).
    claimed = d.store_failed(ctx(1), visibility_timeout_s=120, claim=CLAIM)
    assert claimed.delay_s >= 61


def test_shutdown_on_the_last_receive_records_a_final_status_for_the_dlq() -> None:
    step = d.exhausted(ctx(5, 5), "shutdown")
    assert step.outcome is not None and step.outcome.error_code == d.RETRIES_EXHAUSTED
    assert step.outcome.error_reason == "SHUTDOWN" and step.ack == Release(0)
    # Never claimed too: left for the dead-letter queue, where a replay can recover it.
    never_claimed = d.exhausted(ctx(5, 5), "cooldown")
    assert never_claimed.ack == Release(0)


def test_before_claim_gates() -> None:
    assert d.before_claim(ctx(), 0.0, 2.0, 0.0) is None
    stop = d.before_claim(ctx(stopping=True), 0.0, 2.0, 0.0)
    assert stop is not None and stop.ack == HandBack(0, "shutdown")
    cool = d.before_claim(ctx(cooldown_remaining_s=9.2), 0.0, 2.0, 0.0)
    assert cool is not None and cool.ack == HandBack(10, "cooldown")
    deferred = d.before_claim(ctx(1, 5), 30.0, 2.0, 0.5)
    assert deferred is not None and deferred.ack == HandBack(38, "deferred")
    # Near the last receive a deferral would burn receives toward the DLQ: wait instead.
    assert d.before_claim(ctx(4, 5), 30.0, 2.0, 0.5) is None


SPEND_LIMIT = SendError(
    ErrorKind.CHANNEL, "ServiceQuotaExceededException", "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT", "x"
)


def test_a_spend_limit_pauses_the_channel_and_is_retried_after_the_probe_interval() -> None:
    step = d.send_failed(ctx(1, 5, spend_limit_probe_s=300.0), SPEND_LIMIT)
    assert step.outcome is not None and step.outcome.status is Status.RETRYING
    assert step.pause_channel == "SMS" and step.cooldown is None
    assert step.ack == Release(300)


def test_a_spend_limit_on_the_last_receive_is_kept_not_exhausted() -> None:
    step = d.send_failed(ctx(5, 5, spend_limit_probe_s=300.0), SPEND_LIMIT)
    assert step.outcome is not None and step.outcome.status is Status.RETRYING
    assert isinstance(step.ack, HandBack) and step.ack.reason == "channel_paused"
    stopping = d.send_failed(ctx(5, 5, stopping=True), SPEND_LIMIT)
    assert stopping.outcome is not None and stopping.outcome.error_code == d.RETRIES_EXHAUSTED


def test_a_paused_channel_hands_back_before_the_claim() -> None:
    gate = d.before_claim(ctx(1), 0.0, 4.0, 0.0, channel_pause_s=12.5)
    assert gate is not None and gate.kind is d.Kind.CHANNEL_PAUSED
    assert gate.ack == HandBack(13, "channel_paused")
    assert d.before_claim(ctx(1), 0.0, 4.0, 0.0, channel_pause_s=0.0) is None


def test_an_account_disabled_names_its_reason_in_the_cooldown() -> None:
    error = SendError(ErrorKind.ACCOUNT, "AccessDeniedException", "ACCOUNT_DISABLED", "x")
    step = d.send_failed(ctx(1, 5), error)
    assert step.cooldown == "AccessDeniedException:ACCOUNT_DISABLED"


# -- the reclaim policy (contract section 3: an ambiguous request) ---------------------------
LAPSED_SENDING = {
    "Status": "SENDING",
    "UpdatedAt": (NOW - timedelta(seconds=90)).isoformat(),
    "LeaseUntil": NOW_MS - 30_000,
    "Attempts": 1,
}
AMBIGUOUS_RETRYING = {"Status": "RETRYING", "AmbiguousAt": NOW_MS - 20_000, "Attempts": 1}


def reclaimed(prior: dict[str, Any]) -> Claim:
    return Claim("r-1", "token", 2, NOW_MS + 60_000, prior)


def ambiguous_send() -> SendResult:
    error = SendError(ErrorKind.TRANSIENT, "ReadTimeoutError", None, "read timed out", False, True)
    return SendResult(None, error, 1, 2000.0)


@pytest.mark.parametrize("prior", [{}, {"Status": "RETRYING", "Attempts": 1}], ids=["new", "retry"])
@pytest.mark.parametrize("policy", ["resend", "confirm", "never"])
def test_a_request_with_no_ambiguous_attempt_is_sent(prior: dict[str, Any], policy: str) -> None:
    claim = reclaimed(prior)
    assert claim.ambiguous_since_ms is None
    assert d.reclaim(ctx(reclaim_policy=policy), claim) is None


@pytest.mark.parametrize("prior", [LAPSED_SENDING, AMBIGUOUS_RETRYING], ids=["died", "timed-out"])
def test_resend_sends_an_ambiguous_request_again_at_once(prior: dict[str, Any]) -> None:
    assert d.reclaim(ctx(reclaim_policy="resend"), reclaimed(prior)) is None


def test_a_lapsed_sending_is_ambiguous_since_its_claim() -> None:
    assert reclaimed(LAPSED_SENDING).ambiguous_since_ms == NOW_MS - 90_000
    assert reclaimed(AMBIGUOUS_RETRYING).ambiguous_since_ms == NOW_MS - 20_000


@pytest.mark.parametrize("prior", [LAPSED_SENDING, AMBIGUOUS_RETRYING], ids=["died", "timed-out"])
def test_confirm_waits_for_an_event_until_confirm_s_after_the_attempt(
    prior: dict[str, Any],
) -> None:
    since = reclaimed(prior).ambiguous_since_ms
    assert since is not None
    step = d.reclaim(ctx(reclaim_policy="confirm", reclaim_confirm_s=600), reclaimed(prior))
    assert step is not None and step.kind is d.Kind.RETRYING
    # One visibility delay for the whole wait: one receive, not one per poll.
    assert step.ack == Release(math.ceil((since + 600_000 - NOW_MS) / 1000))
    assert step.outcome is not None and step.outcome.status is Status.RETRYING
    assert step.outcome.error_code == d.AMBIGUOUS and step.outcome.ambiguous_at_ms == since
    # Once the time has passed with no event (an event would have made it SENT): sent again.
    assert d.reclaim(ctx(reclaim_policy="confirm", reclaim_confirm_s=10), reclaimed(prior)) is None


def test_confirm_on_the_last_receive_is_final_and_keeps_its_ambiguity() -> None:
    step = d.reclaim(ctx(5, 5, reclaim_policy="confirm"), reclaimed(AMBIGUOUS_RETRYING))
    assert step is not None and step.kind is d.Kind.EXHAUSTED and step.ack == Release(0)
    assert step.outcome is not None and step.outcome.error_code == d.RETRIES_EXHAUSTED
    assert step.outcome.ambiguous_at_ms == NOW_MS - 20_000  # a replay waits for it too


@pytest.mark.parametrize("prior", [LAPSED_SENDING, AMBIGUOUS_RETRYING], ids=["died", "timed-out"])
def test_never_fails_an_ambiguous_request_as_ambiguous(prior: dict[str, Any]) -> None:
    step = d.reclaim(ctx(reclaim_policy="never"), reclaimed(prior))
    assert step is not None and step.kind is d.Kind.FAILED and step.ack == Delete()
    assert step.outcome is not None and step.outcome.status is Status.FAILED
    assert step.outcome.error_code == d.AMBIGUOUS


def test_an_ambiguous_call_error_follows_the_policy() -> None:
    confirm = d.decide(ctx(reclaim_policy="confirm", reclaim_confirm_s=30), parsed(), CLAIM,
                       ambiguous_send())  # fmt: skip
    assert isinstance(confirm, d.Decision) and confirm.ack == Release(30)
    assert confirm.outcome is not None and confirm.outcome.ambiguous_at_ms == NOW_MS
    never = d.decide(ctx(reclaim_policy="never"), parsed(), CLAIM, ambiguous_send())
    assert isinstance(never, d.Decision) and never.outcome is not None
    assert (never.outcome.status, never.outcome.error_code) == (Status.FAILED, d.AMBIGUOUS)
    resend = d.decide(ctx(reclaim_policy="resend"), parsed(), CLAIM, ambiguous_send())
    assert isinstance(resend, d.Decision) and resend.kind is d.Kind.RETRYING
    assert resend.outcome is not None and resend.outcome.ambiguous_at_ms is None
    # A connect failure is no ambiguity: nothing was written.
    refused = failed_send(ErrorKind.TRANSIENT, "EndpointConnectionError", answered=False)
    step = d.decide(ctx(reclaim_policy="never"), parsed(), CLAIM, refused)
    assert isinstance(step, d.Decision) and step.kind is d.Kind.RETRYING


def test_only_a_call_that_may_have_been_written_is_ambiguous() -> None:
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    from worker.sending.errors import classify

    url = "http://127.0.0.1:1"
    for exc, ambiguous in [
        (ReadTimeoutError(endpoint_url=url), True),
        (ConnectionClosedError(endpoint_url=url), True),
        (TimeoutError(), True),
        (ConnectTimeoutError(endpoint_url=url), False),
        (EndpointConnectionError(endpoint_url=url), False),
    ]:
        error = classify(exc)
        assert error is not None and error.ambiguous is ambiguous, exc
        assert not error.answered
