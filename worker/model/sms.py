"""The SMS channel's body: the ``SendTextMessage`` parameters, plus the envelope keys.

``SmsRequest`` is the model; :data:`worker.model.channels.SMS` is its registry entry. Its
shared parameters (the destination, the body, ``Context``, ...) use the same field types as
MMS (:mod:`worker.model.fields`), so a rule changed there changes for both channels.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from worker.model import rules, segments
from worker.model.envelope import EnvelopeFields
from worker.model.fields import (
    NO_NULL,
    BodyStr,
    IdentityStr,
    PhoneNumberStr,
    StrictModel,
)
from worker.model.messages import RULES
from worker.model.options import SendOptions

NAME = "SMS"
OPERATION = "SendTextMessage"
API_KEYS = rules.SMS_API_KEYS

MessageTypeStr = Literal["TRANSACTIONAL", "PROMOTIONAL"]
KeywordStr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=rules.KEYWORD_MAX, pattern=rules.KEYWORD_PATTERN),
]
CountryParameterKey = Literal["IN_ENTITY_ID", "IN_TEMPLATE_ID"]
CountryParameterStr = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=rules.COUNTRY_PARAMETER_VALUE_MAX, pattern=rules.NO_SPACE_PATTERN
    ),
]
CountryParameterMap = Annotated[
    dict[CountryParameterKey, CountryParameterStr],
    Field(max_length=rules.COUNTRY_PARAMETERS_MAX_ENTRIES),
]


class SmsCore(StrictModel):
    """The ``SendTextMessage`` members of its own, before the shared :class:`SendOptions`."""

    DestinationPhoneNumber: PhoneNumberStr = Field(description=RULES["DestinationPhoneNumber"])
    OriginationIdentity: Annotated[IdentityStr | None, NO_NULL] = Field(
        None, description=RULES["OriginationIdentity"] + " (optional for SMS)"
    )
    MessageBody: BodyStr = Field(description=RULES["MessageBody"])
    MessageType: Annotated[MessageTypeStr | None, NO_NULL] = Field(
        None, description=RULES["MessageType"]
    )
    Keyword: Annotated[KeywordStr | None, NO_NULL] = Field(None, description=RULES["Keyword"])
    DestinationCountryParameters: Annotated[CountryParameterMap | None, NO_NULL] = Field(
        None, description=RULES["DestinationCountryParameters"]
    )


class SmsPayload(SendOptions, SmsCore):
    """The ``SendTextMessage`` parameters of a body (what is sent, less the envelope)."""

    API_KEYS = API_KEYS

    @property
    def parts(self) -> int:
        """The message parts of ``MessageBody``: the tokens its send reserves."""
        return segments.parts(self.MessageBody)


class SmsRequest(EnvelopeFields, SmsPayload):
    """One SMS send request. Build it with :func:`worker.model.parse_request`, not by hand."""

    model_config = ConfigDict(
        title="SmsRequest",
        json_schema_extra={
            "description": (
                "One SQS message body of sms-worker for the SMS channel: the keyword "
                "arguments of the PinpointSMSVoiceV2 SendTextMessage call, plus the envelope "
                'keys RequestId, CampaignId, NotAfter and Channel (which must be "SMS").'
            ),
        },
    )

    Channel: Literal["SMS"] = Field(description=RULES["Channel"])
