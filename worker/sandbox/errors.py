"""The service's modeled errors, as AWS JSON 1.0 error bodies.

botocore (``BaseJSONParser._do_error_parse``) takes the error code from ``__type`` and the
message from ``message``/``Message``; the client then copies the modeled members (``Reason``,
``Fields``, ``ResourceType``...) to the top level of ``e.response``. The body carries both
``message`` and ``Message`` so generic JSON readers and the modeled ``Message`` member agree.
"""

from __future__ import annotations

from typing import Any

from worker.sandbox.validation import FieldError, describe

STATUS = {
    "ValidationException": 400,
    "ConflictException": 400,
    "ThrottlingException": 400,
    "UnknownOperationException": 400,
    "SerializationException": 400,
    "AccessDeniedException": 403,
    "ServiceQuotaExceededException": 402,
    "ResourceNotFoundException": 404,
    "InternalServerException": 500,
}


class ApiError(Exception):
    """An error answer: ``code`` is the ``__type``; ``members`` the modeled extra members."""

    def __init__(self, code: str, message: str, **members: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.members = members

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)

    def body(self) -> dict[str, Any]:
        return {
            "__type": self.code,
            "message": self.message,
            "Message": self.message,
            **self.members,
        }


def validation_error(reason: str, errors: list[FieldError]) -> ApiError:
    fields = [{"Name": e.name, "Message": e.message} for e in errors]
    return ApiError("ValidationException", describe(errors), Reason=reason, Fields=fields)


def throttled() -> ApiError:
    return ApiError("ThrottlingException", "Rate exceeded for the origination identity")


def internal(request_id: str) -> ApiError:
    return ApiError(
        "InternalServerException", "Injected sandbox fault (fault_rate)", RequestId=request_id
    )


def opted_out(destination: str) -> ApiError:
    return ApiError(
        "ConflictException",
        "The destination phone number is opted out",
        Reason="DESTINATION_PHONE_NUMBER_OPTED_OUT",
        ResourceType="opt-out-list",
        ResourceId=destination,
    )


def blocked(prefix: str) -> ApiError:
    message = "Member must not start with a blocked prefix"
    fields = [{"Name": "DestinationPhoneNumber", "Message": message}]
    return ApiError(
        "ValidationException",
        f"The destination country is blocked (prefix {prefix})",
        Reason="DESTINATION_COUNTRY_BLOCKED",
        Fields=fields,
    )


def not_found(identity: str) -> ApiError:
    return ApiError(
        "ResourceNotFoundException",
        "The origination identity was not found",
        ResourceType="phone-number",
        ResourceId=identity,
    )


def account_error(code: str) -> ApiError:
    if code == "AccessDeniedException":
        return ApiError("AccessDeniedException", "Account is disabled", Reason="ACCOUNT_DISABLED")
    # An account-wide quota with no Reason the worker treats per channel (see spend_limit).
    return ApiError(code, "A service quota of the account is exceeded")


#: The Reason of a spend limit reached, per channel name.
SPEND_LIMIT_REASONS = {
    "SMS": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
    "MMS": "MONTHLY_SPEND_LIMIT_REACHED_FOR_MEDIA",
}


def spend_limit(channel: str) -> ApiError:
    """The account's monthly spend limit of ``channel`` is reached."""
    return ApiError(
        "ServiceQuotaExceededException",
        f"Monthly spend limit reached for {channel} messages",
        Reason=SPEND_LIMIT_REASONS[channel],
    )


def unknown_operation(target: str) -> ApiError:
    return ApiError("UnknownOperationException", f"Unknown operation {target[:200]!r}")


def serialization(message: str) -> ApiError:
    return ApiError("SerializationException", message)
