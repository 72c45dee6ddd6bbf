"""The envelope: the keys of a body the worker reads itself, whatever the channel.

``RequestId``, ``CampaignId``, ``NotAfter`` and ``Channel`` are never sent to the API. Each
channel's model takes their fields from :class:`EnvelopeFields` (one validation pass per
body); :class:`Envelope` is what the send handler reads of them once the body is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import Field

from worker.model import rules
from worker.model.fields import NO_NULL, DateTimeStr, StrictModel, TokenStr
from worker.model.messages import RULES


class EnvelopeFields(StrictModel):
    """The envelope keys of a body. A channel's model lists this base first, so that its
    own parameters come first (in the JSON Schema and in error order), and narrows
    ``Channel`` to its own name."""

    RequestId: Annotated[TokenStr | None, NO_NULL] = Field(None, description=RULES["RequestId"])
    CampaignId: Annotated[TokenStr | None, NO_NULL] = Field(None, description=RULES["CampaignId"])
    NotAfter: Annotated[DateTimeStr | None, NO_NULL] = Field(None, description=RULES["NotAfter"])
    Channel: Annotated[str | None, NO_NULL] = Field(None, description=RULES["Channel"])

    @property
    def not_after(self) -> datetime | None:
        """``NotAfter`` as an aware UTC datetime, or None when the request has none."""
        if self.NotAfter is None:
            return None
        return rules.parse_not_after(self.NotAfter)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A valid body's envelope, as the send handler uses it."""

    request_id: str  # RequestId, or the SQS MessageId when the body has none
    channel: str  # the channel's name: "MMS" when the body has no Channel
    campaign_id: str | None = None
    not_after: datetime | None = None  # aware, UTC
