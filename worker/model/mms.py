"""The MMS channel's body: the ``SendMediaMessage`` parameters, plus the envelope keys.

``MmsRequest`` is the model (``SendRequest`` is its historical name, kept for producers);
:data:`worker.model.channels.MMS` is its registry entry.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from worker.model import rules
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

NAME = "MMS"
OPERATION = "SendMediaMessage"
API_KEYS = rules.MMS_API_KEYS

MediaUrlStr = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=rules.MEDIA_URL_MAX, pattern=rules.MEDIA_URL_PATTERN
    ),
]
MediaUrlList = Annotated[list[MediaUrlStr], Field(min_length=1, max_length=1)]


class MmsCore(StrictModel):
    """The ``SendMediaMessage`` members of its own, before the shared :class:`SendOptions`."""

    DestinationPhoneNumber: PhoneNumberStr = Field(description=RULES["DestinationPhoneNumber"])
    OriginationIdentity: IdentityStr = Field(description=RULES["OriginationIdentity"])
    MessageBody: Annotated[BodyStr | None, NO_NULL] = Field(None, description=RULES["MessageBody"])
    MediaUrls: Annotated[MediaUrlList | None, NO_NULL] = Field(None, description=RULES["MediaUrls"])


class MmsPayload(SendOptions, MmsCore):
    """The ``SendMediaMessage`` parameters of a body (what is sent, less the envelope)."""

    API_KEYS = API_KEYS

    @model_validator(mode="after")
    def _has_content(self) -> MmsPayload:
        if self.MessageBody is None and self.MediaUrls is None:
            raise PydanticCustomError("no_content", "neither MessageBody nor MediaUrls")
        return self

    @property
    def parts(self) -> int:
        """An MMS is one message part, whatever it holds: the tokens its send reserves."""
        return 1


class MmsRequest(EnvelopeFields, MmsPayload):
    """One MMS send request. Build it with :func:`worker.model.parse_request`, not by hand."""

    model_config = ConfigDict(
        title="SendRequest",
        json_schema_extra={
            "description": (
                "One SQS message body of sms-worker: the keyword arguments of the "
                "PinpointSMSVoiceV2 SendMediaMessage call, plus the envelope keys RequestId, "
                "CampaignId, NotAfter and Channel. MessageBody, MediaUrls or both must be given."
            ),
            "anyOf": [{"required": ["MessageBody"]}, {"required": ["MediaUrls"]}],
        },
    )

    Channel: Annotated[Literal["MMS"] | None, NO_NULL] = Field(None, description=RULES["Channel"])


SendRequest = MmsRequest
