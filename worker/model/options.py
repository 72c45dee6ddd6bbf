"""The send options both channels' APIs take, declared once.

``SendMediaMessage`` and ``SendTextMessage`` share these members with the same rules; a
channel's payload model lists its own members in a core class and inherits these after them
(``class MmsPayload(SendOptions, MmsCore)``: pydantic orders a model's fields base by base
from the last, so the core's come first, as in the contract's tables).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from worker.model.fields import NO_NULL, ContextMap, NameStr, PriceStr, StrictModel, TtlInt
from worker.model.messages import RULES


class SendOptions(StrictModel):
    """The options of a send (every channel), and the API keyword arguments of a payload."""

    API_KEYS: ClassVar[tuple[str, ...]] = ()  # the channel's API members, in contract order

    ConfigurationSetName: Annotated[NameStr | None, NO_NULL] = Field(
        None, description=RULES["ConfigurationSetName"]
    )
    MaxPrice: Annotated[PriceStr | None, NO_NULL] = Field(None, description=RULES["MaxPrice"])
    TimeToLive: Annotated[TtlInt | None, NO_NULL] = Field(None, description=RULES["TimeToLive"])
    Context: Annotated[ContextMap | None, NO_NULL] = Field(None, description=RULES["Context"])
    DryRun: Annotated[bool | None, NO_NULL] = Field(None, description=RULES["DryRun"])
    ProtectConfigurationId: Annotated[NameStr | None, NO_NULL] = Field(
        None, description=RULES["ProtectConfigurationId"]
    )
    MessageFeedbackEnabled: Annotated[bool | None, NO_NULL] = Field(
        None, description=RULES["MessageFeedbackEnabled"]
    )

    def api_params(self) -> dict[str, object]:
        """Keyword arguments for the channel's operation: the API members that were given."""
        given = self.model_fields_set.intersection(self.API_KEYS)
        return self.model_dump(include=given)
