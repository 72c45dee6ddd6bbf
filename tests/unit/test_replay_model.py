"""Replays in the status state machine: a request that ran out of receives
(``FAILED``/``RETRIES_EXHAUSTED``) is re-opened by a later delivery; every other final record
stays final. Pure functions: no servers."""

from __future__ import annotations

import pytest

from worker.status.model import (
    REOPENED,
    RETRIES_EXHAUSTED,
    TERMINAL,
    ClaimRefused,
    Status,
    is_duplicate,
    is_replayable,
    may_follow,
)

FINAL_NOT_REPLAYABLE = [
    (Status.SENT, None),
    (Status.EXPIRED, None),
    (Status.FAILED, "ValidationException"),
    (Status.FAILED, "ConflictException"),
    (Status.FAILED, "INVALID_REQUEST"),  # deterministic: the same body fails the same way
    (Status.FAILED, "AMBIGUOUS"),
    (Status.FAILED, None),
]


def test_only_retries_exhausted_is_replayable() -> None:
    assert is_replayable(Status.FAILED, RETRIES_EXHAUSTED)
    assert is_replayable("FAILED", "RETRIES_EXHAUSTED")  # as read from the table
    for status, code in FINAL_NOT_REPLAYABLE:
        assert not is_replayable(status, code), (status, code)
    # The error code alone is not enough: a RETRYING record keeps its last code.
    assert not is_replayable(Status.RETRYING, RETRIES_EXHAUSTED)
    assert not is_replayable(Status.SENDING, RETRIES_EXHAUSTED)
    assert not is_replayable(None, RETRIES_EXHAUSTED)


@pytest.mark.parametrize(("status", "code"), FINAL_NOT_REPLAYABLE)
def test_a_delivery_of_any_other_final_request_is_a_duplicate(
    status: Status, code: str | None
) -> None:
    for attempted in (Status.SENDING, Status.FAILED, Status.EXPIRED):
        assert is_duplicate(status, code, attempted)
    assert ClaimRefused({"Status": status, "ErrorCode": code}).is_duplicate


def test_an_exhausted_request_is_reopened_by_a_claim_or_an_expiry_not_an_invalid_copy() -> None:
    assert {Status.SENDING, Status.EXPIRED} == REOPENED
    assert may_follow(Status.FAILED, Status.SENDING, RETRIES_EXHAUSTED)
    assert may_follow(Status.FAILED, Status.EXPIRED, RETRIES_EXHAUSTED)
    assert not may_follow(Status.FAILED, Status.FAILED, RETRIES_EXHAUSTED)
    assert not may_follow(Status.FAILED, Status.SENT, RETRIES_EXHAUSTED)  # only via a claim
    assert not is_duplicate(Status.FAILED, RETRIES_EXHAUSTED)  # a claim re-opens it
    assert not is_duplicate(Status.FAILED, RETRIES_EXHAUSTED, Status.EXPIRED)
    # An invalid body under its RequestId is a bad copy: skipped, the record stays replayable.
    assert is_duplicate(Status.FAILED, RETRIES_EXHAUSTED, Status.FAILED)
    exhausted = {"Status": "FAILED", "ErrorCode": RETRIES_EXHAUSTED}
    assert not ClaimRefused(exhausted).is_duplicate
    assert ClaimRefused(exhausted, attempted=Status.FAILED).is_duplicate


def test_other_transitions_are_unchanged() -> None:
    for status in TERMINAL:
        for after in Status:
            assert not may_follow(status, after, "ValidationException")
    assert may_follow(None, Status.SENDING) and may_follow(Status.RETRYING, Status.SENDING)
    assert not is_duplicate(None) and not is_duplicate(Status.RETRYING)
    assert not is_duplicate(Status.SENDING)
