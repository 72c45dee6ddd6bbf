"""The validated send request: one SQS message body, checked against the contract.

Field names are the contract's keys (the ``SendMediaMessage`` parameter names plus the
envelope keys), so errors and the JSON Schema speak the contract's language. Parsing is
strict: no coercion between JSON types, no unknown keys, no explicit ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import CoreSchema, PydanticCustomError

from worker.model import rules
from worker.model.messages import RULES


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


_NO_NULL = _NoNull()


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
MediaUrlStr = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=rules.MEDIA_URL_MAX, pattern=rules.MEDIA_URL_PATTERN
    ),
]
MediaUrlList = Annotated[list[MediaUrlStr], Field(min_length=1, max_length=1)]
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


def _key_not_blank(schema: JsonDict) -> None:
    """State the key rule in ``propertyNames`` (a key pattern would become patternProperties)."""
    names = schema.get("propertyNames")
    if isinstance(names, dict):
        names["pattern"] = rules.NOT_BLANK_PATTERN


ContextMap = Annotated[
    dict[ContextKeyStr, ContextValueStr],
    Field(max_length=rules.CONTEXT_MAX_ENTRIES, json_schema_extra=_key_not_blank),
]
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


class SendRequest(BaseModel):
    """One send request. Build it with :func:`worker.model.parse_request`, not by hand."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        hide_input_in_errors=True,
        field_title_generator=lambda name, _info: name,
        title="SendRequest",
        json_schema_extra={
            "description": (
                "One SQS message body of sms-worker: the keyword arguments of the "
                "PinpointSMSVoiceV2 SendMediaMessage call, plus the envelope keys RequestId, "
                "CampaignId and NotAfter. MessageBody, MediaUrls or both must be given."
            ),
            "anyOf": [{"required": ["MessageBody"]}, {"required": ["MediaUrls"]}],
        },
    )

    DestinationPhoneNumber: PhoneNumberStr = Field(description=RULES["DestinationPhoneNumber"])
    OriginationIdentity: IdentityStr = Field(description=RULES["OriginationIdentity"])
    MessageBody: Annotated[BodyStr | None, _NO_NULL] = Field(None, description=RULES["MessageBody"])
    MediaUrls: Annotated[MediaUrlList | None, _NO_NULL] = Field(
        None, description=RULES["MediaUrls"]
    )
    ConfigurationSetName: Annotated[NameStr | None, _NO_NULL] = Field(
        None, description=RULES["ConfigurationSetName"]
    )
    MaxPrice: Annotated[PriceStr | None, _NO_NULL] = Field(None, description=RULES["MaxPrice"])
    TimeToLive: Annotated[TtlInt | None, _NO_NULL] = Field(None, description=RULES["TimeToLive"])
    Context: Annotated[ContextMap | None, _NO_NULL] = Field(None, description=RULES["Context"])
    DryRun: Annotated[bool | None, _NO_NULL] = Field(None, description=RULES["DryRun"])
    ProtectConfigurationId: Annotated[NameStr | None, _NO_NULL] = Field(
        None, description=RULES["ProtectConfigurationId"]
    )
    MessageFeedbackEnabled: Annotated[bool | None, _NO_NULL] = Field(
        None, description=RULES["MessageFeedbackEnabled"]
    )
    RequestId: Annotated[TokenStr | None, _NO_NULL] = Field(None, description=RULES["RequestId"])
    CampaignId: Annotated[TokenStr | None, _NO_NULL] = Field(None, description=RULES["CampaignId"])
    NotAfter: Annotated[DateTimeStr | None, _NO_NULL] = Field(None, description=RULES["NotAfter"])

    @field_validator("*", mode="after")
    @classmethod
    def _utf8_only(cls, value: object) -> object:
        """Reject lone surrogates (valid in JSON escapes, impossible to send as UTF-8)."""
        if not all(rules.is_utf8_text(text) for text in _strings_in(value)):
            raise PydanticCustomError("not_utf8", "text with a lone surrogate")
        return value

    @model_validator(mode="after")
    def _has_content(self) -> SendRequest:
        if self.MessageBody is None and self.MediaUrls is None:
            raise PydanticCustomError("no_content", "neither MessageBody nor MediaUrls")
        return self

    def api_params(self) -> dict[str, object]:
        """Keyword arguments for ``send_media_message``: the API members that were given."""
        given = self.model_fields_set.intersection(rules.API_KEYS)
        return self.model_dump(include=given)

    @property
    def not_after(self) -> datetime | None:
        """``NotAfter`` as an aware UTC datetime, or None when the request has none."""
        if self.NotAfter is None:
            return None
        return rules.parse_not_after(self.NotAfter)
