"""The channels a body may ask for (its ``Channel`` key), one registry entry each.

An entry says everything the rest of the worker needs to know about a channel: the API
operation that sends it, the IAM action that call needs, the model that validates its bodies
and the rate-limit key of a request. Nothing else names an operation: the sender, the hot
path's client, the sandbox and the metrics read it from here. A new channel is a model module
(like :mod:`worker.model.mms`), an entry in :data:`CHANNELS` and a sandbox handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from botocore import xform_name
from pydantic import BaseModel

from worker.model import mms, sms


class ChannelRequest(Protocol):
    """What every channel's validated body offers (its model has the envelope fields too)."""

    @property
    def DestinationPhoneNumber(self) -> str: ...
    @property
    def OriginationIdentity(self) -> str | None: ...
    @property
    def DryRun(self) -> bool | None: ...
    @property
    def RequestId(self) -> str | None: ...
    @property
    def CampaignId(self) -> str | None: ...
    @property
    def NotAfter(self) -> str | None: ...

    @property
    def parts(self) -> int: ...

    def api_params(self) -> dict[str, object]: ...

    def model_dump(self, *, exclude_unset: bool = ..., exclude_none: bool = ...) -> Any: ...


class UnknownChannel(LookupError):
    """No channel of that name in the registry."""

    def __init__(self, name: object) -> None:
        super().__init__(f"no channel {name!r}; known: {', '.join(CHANNELS)}")
        self.name = name


#: The bucket of an SMS request with no OriginationIdentity (the service picks one).
DEFAULT_RATE_KEY = "default"


def _identity(request: ChannelRequest) -> str:
    return request.OriginationIdentity or ""


def _identity_and_channel(name: str) -> Callable[[Any], str]:
    """``IDENTITY/NAME``: the identity's bucket for this channel alone (``default/NAME``
    when the request names no identity). Its quota is the settings' to look up."""

    def rate_key(request: ChannelRequest) -> str:
        return f"{request.OriginationIdentity or DEFAULT_RATE_KEY}/{name}"

    return rate_key


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel: how its bodies are checked and sent."""

    name: str  # the body's Channel value
    operation: str  # the PinpointSMSVoiceV2 operation that sends it
    model: type[BaseModel]  # validates a whole body: the channel's parameters + envelope
    api_keys: tuple[str, ...]  # its parameters, in contract order (the rest is envelope)
    iam_action: str  # what the worker's role must allow for ``operation``
    # The token bucket a request waits on (per origination identity, as the API throttles):
    # MMS ``IDENTITY``, SMS ``IDENTITY/SMS`` (the quota lookup: Settings.rate_for).
    rate_key: Callable[[Any], str] = _identity
    method: str = field(init=False)  # the SDK client's method for ``operation``

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", xform_name(self.operation))  # the SDK method

    def validate(self, data: Mapping[str, Any]) -> ChannelRequest:
        """The body as this channel's model; pydantic's ``ValidationError`` if invalid."""
        request: ChannelRequest = self.model.model_validate(data)  # type: ignore[assignment]
        return request


MMS = Channel(
    name=mms.NAME,
    operation=mms.OPERATION,
    model=mms.MmsRequest,
    api_keys=mms.API_KEYS,
    iam_action=f"sms-voice:{mms.OPERATION}",
)

SMS = Channel(
    name=sms.NAME,
    operation=sms.OPERATION,
    model=sms.SmsRequest,
    api_keys=sms.API_KEYS,
    iam_action=f"sms-voice:{sms.OPERATION}",
    rate_key=_identity_and_channel(sms.NAME),
)

#: The channel of a body that has no ``Channel`` key.
DEFAULT_CHANNEL = MMS

#: Every channel, by name.
CHANNELS: Mapping[str, Channel] = MappingProxyType({c.name: c for c in (MMS, SMS)})

#: Every channel, by operation (what the sandbox and the metrics key on).
BY_OPERATION: Mapping[str, Channel] = MappingProxyType({c.operation: c for c in CHANNELS.values()})


def channel_named(name: str) -> Channel:
    """The channel called ``name``; :class:`UnknownChannel` if there is none."""
    try:
        return CHANNELS[name]
    except (KeyError, TypeError):
        raise UnknownChannel(name) from None


def operations() -> tuple[str, ...]:
    """The operations the worker may call, in registry order."""
    return tuple(BY_OPERATION)
