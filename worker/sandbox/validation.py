"""Validate a request body against botocore's own service model, the way the service does.

Everything here is driven by the input shape (required members, length, range, pattern,
enum, list and map sizes, member types, unknown members), so it follows the model botocore
ships. Error messages never echo the offending value: it may be a phone number or a body.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.session

from worker.model.channels import MMS, SMS

SERVICE_NAME = "pinpoint-sms-voice-v2"
OPERATION_NAME = MMS.operation  # the default of input_shape


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failed constraint: ``name`` is the member path, e.g. ``MediaUrls[0]``."""

    name: str
    message: str
    missing: bool = False


@functools.cache
def service_model() -> Any:
    """botocore's model of PinpointSMSVoiceV2 (loaded once)."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


@functools.cache
def input_shape(operation: str = OPERATION_NAME) -> Any:
    """The input structure shape of ``operation``."""
    return service_model().operation_model(operation).input_shape


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # a pattern Python cannot read: skip that check rather than fail
        return None


def validate(shape: Any, value: object, path: str = "") -> list[FieldError]:
    """Every constraint of ``shape`` that ``value`` breaks (empty when valid)."""
    kind = shape.type_name
    checker = _CHECKERS.get(kind)
    return checker(shape, value, path) if checker is not None else []


def _fail(path: str, message: str) -> list[FieldError]:
    return [FieldError(path or "$", message)]


def _check_structure(shape: Any, value: object, path: str) -> list[FieldError]:
    if not isinstance(value, dict):
        return _fail(path, "Member must be an object")
    errors: list[FieldError] = []
    members = shape.members
    for name in shape.required_members:
        if value.get(name) is None:
            errors.append(FieldError(_join(path, name), "Member must not be null", True))
    for name, member_value in value.items():
        if name not in members:
            errors.append(FieldError(_join(path, name), "Unknown field"))
        elif member_value is not None:
            errors.extend(validate(members[name], member_value, _join(path, name)))
    return errors


def _check_string(shape: Any, value: object, path: str) -> list[FieldError]:
    if not isinstance(value, str):
        return _fail(path, "Member must be a string")
    errors = _check_size(shape, len(value), path, "length")
    enum = shape.enum
    if enum and value not in enum:
        errors += _fail(path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = shape.metadata.get("pattern")
    if pattern is not None:
        compiled = _compiled(pattern)
        if compiled is not None and compiled.fullmatch(value) is None:
            errors += _fail(path, f"Member must satisfy regular expression pattern: {pattern}")
    return errors


def _check_integer(shape: Any, value: object, path: str) -> list[FieldError]:
    if isinstance(value, bool) or not isinstance(value, int):
        return _fail(path, "Member must be an integer")
    return _check_range(shape, value, path)


def _check_float(shape: Any, value: object, path: str) -> list[FieldError]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _fail(path, "Member must be a number")
    return _check_range(shape, value, path)


def _check_boolean(shape: Any, value: object, path: str) -> list[FieldError]:
    return [] if isinstance(value, bool) else _fail(path, "Member must be a boolean")


def _check_timestamp(shape: Any, value: object, path: str) -> list[FieldError]:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return _fail(path, "Member must be a timestamp")
    return []


def _check_blob(shape: Any, value: object, path: str) -> list[FieldError]:
    return [] if isinstance(value, str) else _fail(path, "Member must be base64 text")


def _check_list(shape: Any, value: object, path: str) -> list[FieldError]:
    if not isinstance(value, list):
        return _fail(path, "Member must be a list")
    errors = _check_size(shape, len(value), path, "length")
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if item is None:
            errors += _fail(item_path, "Member must not be null")
        else:
            errors += validate(shape.member, item, item_path)
    return errors


def _check_map(shape: Any, value: object, path: str) -> list[FieldError]:
    if not isinstance(value, dict):
        return _fail(path, "Member must be an object")
    errors = _check_size(shape, len(value), path, "length")
    for key, item in value.items():
        item_path = f"{path}[{key}]"
        errors += validate(shape.key, key, item_path)
        if item is None:
            errors += _fail(item_path, "Member must not be null")
        else:
            errors += validate(shape.value, item, item_path)
    return errors


def _check_size(shape: Any, size: float, path: str, what: str) -> list[FieldError]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        return _fail(path, f"Member must have {what} greater than or equal to {low}")
    if high is not None and size > high:
        return _fail(path, f"Member must have {what} less than or equal to {high}")
    return []


def _check_range(shape: Any, number: float, path: str) -> list[FieldError]:
    return _check_size(shape, number, path, "value")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_CHECKERS = {
    "structure": _check_structure,
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "float": _check_float,
    "double": _check_float,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "blob": _check_blob,
    "list": _check_list,
    "map": _check_map,
}


def describe(errors: list[FieldError]) -> str:
    """The service-style message: ``N validation error(s) detected: ...``."""
    noun = "error" if len(errors) == 1 else "errors"
    details = "; ".join(
        f"Value at '{e.name}' failed to satisfy constraint: {e.message}" for e in errors
    )
    return f"{len(errors)} validation {noun} detected: {details}"


def validate_send_media_message(params: object) -> tuple[str, list[FieldError]] | None:
    """``None`` when ``params`` is a valid SendMediaMessage request, else (Reason, errors).

    Reason is ``MISSING_PARAMETER`` when a required member (or both MessageBody and
    MediaUrls) is missing, otherwise ``FIELD_VALIDATION_FAILED``.
    """
    errors = validate(input_shape(MMS.operation), params)
    no_content = (
        isinstance(params, dict)
        and params.get("MessageBody") is None
        and params.get("MediaUrls") is None
    )
    if not errors and no_content:
        message = "Either MessageBody or MediaUrls must be present"
        errors = [FieldError("MessageBody", message, True)]
    if not errors:
        return None
    reason = "MISSING_PARAMETER" if any(e.missing for e in errors) else "FIELD_VALIDATION_FAILED"
    return reason, errors


def validate_send_text_message(params: object) -> tuple[str, list[FieldError]] | None:
    """``None`` when ``params`` is a valid SendTextMessage request, else (Reason, errors).

    The API model leaves MessageBody optional, but a text message needs one: its absence is
    ``MISSING_PARAMETER`` as for a required member. Unknown members (``MediaUrls``) fail."""
    errors = validate(input_shape(SMS.operation), params)
    if isinstance(params, dict) and params.get("MessageBody") is None:
        errors.append(FieldError("MessageBody", "Member must not be null", True))
    if not errors:
        return None
    reason = "MISSING_PARAMETER" if any(e.missing for e in errors) else "FIELD_VALIDATION_FAILED"
    return reason, errors


#: (Reason, errors) for an invalid request, None for a valid one.
Validator = Callable[[object], tuple[str, list[FieldError]] | None]

#: The sandbox's handler of each registered channel's operation: how the service checks it.
VALIDATORS: Mapping[str, Validator] = {
    MMS.operation: validate_send_media_message,
    SMS.operation: validate_send_text_message,
}
