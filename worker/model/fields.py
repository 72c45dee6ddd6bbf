"""The value types every channel's request shares, and the strict model they are checked by.

Field names are the contract's keys, so errors and the JSON Schema speak the contract's
language. Parsing is strict: no coercion between JSON types, no unknown keys, no explicit
``null``. Each channel's model (:mod:`worker.model.mms`, ...) is built from these.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic_core import CoreSchema, PydanticCustomError

from worker.model import rules


class _NoNull:
    """Marks ``X | None = None``: absent means unset, but an explicit ``null`` is invalid.

    The validator is built from ``X`` alone, so ``None`` fails with ``X``'s type error and
    the JSON Schema has no ``null`` branch.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        inner = [arg for arg in get_args(source) if arg is not type(None)]
        if len(inner) != 1:  # pragma: no cover - a programming error
            raise TypeError(f"_NoNull needs 'X | None', got {source!r}")
        return handler.generate_schema(inner[0])


NO_NULL = _NoNull()


def _phone_number(value: str) -> str:
    if not rules.is_valid_phone_number(value):
        raise PydanticCustomError("phone_number", "not a valid E.164 phone number")
    return value


def _not_blank(value: str) -> str:
    if rules.is_blank(value):
        raise PydanticCustomError("blank", "only white space")
    return value


def _no_edge_space(value: str) -> str:
    if rules.has_edge_space(value):
        raise PydanticCustomError("edge_space", "leading or trailing white space")
    return value


def _date_time(value: str) -> str:
    try:
        rules.parse_not_after(value)
    except ValueError:
        raise PydanticCustomError("date_time", "not a valid date-time") from None
    return value


PhoneNumberStr = Annotated[
    str,
    StringConstraints(min_length=3, max_length=16, pattern=rules.E164_PATTERN),
    AfterValidator(_phone_number),
]
IdentityStr = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=rules.NAME_MAX, pattern=rules.ORIGINATION_IDENTITY_PATTERN
    ),
]
BodyStr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=rules.MESSAGE_BODY_MAX),
    AfterValidator(_not_blank),
    Field(json_schema_extra={"pattern": rules.NOT_BLANK_PATTERN}),
]
NameStr = Annotated[
    str, StringConstraints(min_length=1, max_length=rules.NAME_MAX, pattern=rules.NAME_PATTERN)
]
TokenStr = Annotated[
    str, StringConstraints(min_length=1, max_length=rules.TOKEN_MAX, pattern=rules.TOKEN_PATTERN)
]
PriceStr = Annotated[
    str, StringConstraints(min_length=2, max_length=8, pattern=rules.MAX_PRICE_PATTERN)
]
TtlInt = Annotated[int, Field(ge=rules.TTL_MIN, le=rules.TTL_MAX)]
ContextKeyStr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=rules.CONTEXT_KEY_MAX),
    AfterValidator(_not_blank),
]
ContextValueStr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=rules.CONTEXT_VALUE_MAX),
    AfterValidator(_no_edge_space),
    Field(json_schema_extra={"pattern": rules.NO_EDGE_SPACE_PATTERN}),
]


def _key_rules(schema: JsonDict) -> None:
    """State the key rules in ``propertyNames`` (a key pattern would become patternProperties):
    not blank, and not the worker's reserved key."""
    names = schema.get("propertyNames")
    if isinstance(names, dict):
        names["pattern"] = rules.NOT_BLANK_PATTERN
        names["not"] = {"const": rules.RESERVED_CONTEXT_KEY}


def _no_reserved_key(value: dict[str, str]) -> dict[str, str]:
    if rules.RESERVED_CONTEXT_KEY in value:
        raise PydanticCustomError("reserved_key", "the worker's reserved key")
    return value


#: ``Context`` as a producer gives it: at most 4 entries, never the reserved key (the worker
#: adds it: :func:`with_request_id`). Shared by every channel's model.
ContextMap = Annotated[
    dict[ContextKeyStr, ContextValueStr],
    Field(max_length=rules.PRODUCER_CONTEXT_MAX_ENTRIES, json_schema_extra=_key_rules),
    AfterValidator(_no_reserved_key),
]


def with_request_id(context: object, request_id: str) -> dict[str, str]:
    """The ``Context`` to send: the producer's entries plus the reserved key naming the
    request (so delivery events, which echo ``Context``, name it)."""
    given = dict(context) if isinstance(context, dict) else {}
    return {**given, rules.RESERVED_CONTEXT_KEY: request_id}


DateTimeStr = Annotated[
    str,
    StringConstraints(pattern=rules.NOT_AFTER_PATTERN),
    AfterValidator(_date_time),
    Field(json_schema_extra={"format": "date-time"}),
]


def _strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    if isinstance(value, dict):
        return [text for pair in value.items() for text in pair if isinstance(text, str)]
    return []


class StrictModel(BaseModel):
    """The base of every request model: frozen, strict, no unknown keys, no input in errors,
    and no lone surrogate in any text (valid in JSON escapes, impossible to send as UTF-8)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        hide_input_in_errors=True,
        field_title_generator=lambda name, _info: name,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _utf8_only(cls, value: object) -> object:
        if not all(rules.is_utf8_text(text) for text in _strings_in(value)):
            raise PydanticCustomError("not_utf8", "text with a lone surrogate")
        return value
