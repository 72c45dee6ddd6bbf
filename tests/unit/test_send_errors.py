"""A provider's error text reaches the status table (ErrorMessage, ErrorReason) masked."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from worker.sending.errors import ErrorKind, SendError, classify


def client_error(
    code: str, message: str, *, reason: str | None = None, status: int = 400
) -> ClientError:
    error: dict[str, str] = {"Code": code, "Message": message}
    response: dict[str, object] = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
    if reason is not None:
        response["Reason"] = reason
    return ClientError(response, "SendMediaMessage")


def classified(exc: BaseException) -> SendError:
    error = classify(exc)
    assert error is not None
    return error


@pytest.mark.parametrize(
    "written",
    [
        "+12065550100",
        "+1 206-555-0100",
        "+1 (206) 555-0100",
        "12065550100",
        "(206) 555-0100",
        "206.555.0100",
        "206 555 0100",
    ],
)
def test_the_destination_echoed_in_a_provider_message_is_masked(written: str) -> None:
    error = classified(
        client_error(
            "ValidationException",
            f"1 validation error: DestinationPhoneNumber '{written}' is not a valid number",
        )
    )
    assert error.kind is ErrorKind.PERMANENT and error.code == "ValidationException"
    assert "5550100" not in re.sub(r"[^0-9]", "", error.message)
    assert "***00" in error.message
    assert error.message.startswith("1 validation error: DestinationPhoneNumber '")


def test_the_reason_is_masked_and_a_plain_reason_is_kept() -> None:
    error = classified(
        client_error("ConflictException", "opted out", reason="DESTINATION_PHONE_NUMBER_OPTED_OUT")
    )
    assert error.reason == "DESTINATION_PHONE_NUMBER_OPTED_OUT" and error.message == "opted out"
    error = classified(client_error("ValidationException", "x", reason="BLOCKED +447700900123"))
    assert error.reason == "BLOCKED +44***23"


def test_a_number_across_the_cut_is_masked_before_the_cut() -> None:
    message = "x" * 495 + " to +12065550100 failed"
    error = classified(client_error("ValidationException", message))
    assert len(error.message) <= 500
    assert "+1206" not in error.message and "20655" not in error.message


def test_no_message_and_a_throttle_are_classified_as_before() -> None:
    error = classified(client_error("ThrottlingException", "", status=400))
    assert error.kind is ErrorKind.TRANSIENT and error.throttled and error.message == ""
    assert error.reason is None
    error = classified(client_error("InternalServerException", "try +12065550100", status=500))
    assert error.kind is ErrorKind.TRANSIENT and error.message == "try +1***00"


def test_a_transport_errors_text_is_masked_too() -> None:
    error = classified(ConnectionError("reset while sending to +12065550100"))
    assert error.kind is ErrorKind.TRANSIENT and error.code == "ConnectionError"
    assert error.message == "reset while sending to +1***00"
    assert classify(ValueError("+12065550100")) is None  # not a send error
