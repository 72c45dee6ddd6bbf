"""Turn one SQS message body into a :class:`ParsedRequest` or an :class:`InvalidRequest`.

The body's ``Channel`` key picks its registry entry (:mod:`worker.model.channels`), whose
model checks the whole body in one pass. :func:`parse_request` never raises: whatever the body
holds, the caller gets a result it can record. JSON is read strictly: UTF-8 only, no
``NaN``/``Infinity``, no key given twice at any depth (which of two values would win is not
something a sender should have to guess).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from worker.model import messages
from worker.model.channels import CHANNELS, DEFAULT_CHANNEL, Channel, ChannelRequest
from worker.model.envelope import Envelope
from worker.model.fields import with_request_id
from worker.model.rules import ENVELOPE_KEYS, parse_not_after

# Per channel: its contract keys' reporting order (its parameters, then the envelope).
_RANKS: dict[str, dict[str, int]] = {
    name: {key: index for index, key in enumerate(dict.fromkeys(c.api_keys + ENVELOPE_KEYS))}
    for name, c in CHANNELS.items()
}


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A valid body: its envelope, its channel and the channel's validated request."""

    envelope: Envelope
    channel: Channel
    payload: ChannelRequest  # the channel's model (it holds the envelope keys too)

    @property
    def request_id(self) -> str:
        """RequestId, or the SQS MessageId when the body has none."""
        return self.envelope.request_id

    @property
    def destination(self) -> str:
        return self.payload.DestinationPhoneNumber

    @property
    def identity(self) -> str | None:
        """OriginationIdentity (for the status record and the logs)."""
        return self.payload.OriginationIdentity

    @property
    def dry_run(self) -> bool:
        return bool(self.payload.DryRun)

    @property
    def rate_key(self) -> str:
        """The rate limiter's bucket for this request (the channel decides what it is)."""
        return self.channel.rate_key(self.payload)

    @property
    def parts(self) -> int:
        """The message parts of the request: the tokens of its bucket its send reserves."""
        return self.payload.parts

    def api_params(self, default_configuration_set: str | None = None) -> dict[str, object]:
        """The keyword arguments of ``channel.operation``: the API members that were given,
        the reserved ``Context`` key naming the request (contract section 1), and
        ``default_configuration_set`` when the request names none (so that events exist)."""
        params = self.payload.api_params()
        params["Context"] = with_request_id(params.get("Context"), self.request_id)
        if default_configuration_set and "ConfigurationSetName" not in params:
            params["ConfigurationSetName"] = default_configuration_set
        return params


@dataclass(frozen=True, slots=True)
class InvalidRequest:
    """A body that must not be sent, with what is known about it for the status record."""

    request_id: str  # the body's RequestId when that key is valid, else the SQS MessageId
    # ErrorReason: the first invalid key's name ("body" when the body is not a JSON object),
    # or UNNAMED_KEY for an unknown key whose name might be personal data (reportable_key).
    field: str
    message: str  # what is wrong and what to do; never holds a value from the body
    campaign_id: str | None = None  # CampaignId when that key is valid
    destination: str | None = None  # DestinationPhoneNumber when that key is valid
    identity: str | None = None  # OriginationIdentity when that key is valid


class _DuplicatedKeys(dict[str, Any]):
    """A decoded JSON object in which some keys were given more than once."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]], duplicates: tuple[str, ...]) -> None:
        super().__init__(pairs)
        self.duplicates = duplicates


class _BodyError(Exception):
    """The body is not a JSON object; the argument says what it is instead."""


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    duplicates: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    return _DuplicatedKeys(pairs, tuple(duplicates))


def _no_constant(name: str) -> Any:
    raise _BodyError(f"{name}, which JSON does not allow")


def _no_overflow(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _BodyError("a number too large for a double")
    return number


def _decode(body: str | bytes) -> object:
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise _BodyError("bytes that are not UTF-8") from None
    try:
        return json.loads(
            body,
            object_pairs_hook=_object_pairs,
            parse_constant=_no_constant,
            parse_float=_no_overflow,
        )
    except json.JSONDecodeError as exc:
        # The decoder's own words, cut before any ':' (the pure-Python decoder quotes the
        # offending character there): a message never holds text from the body.
        what = exc.msg.split(":", 1)[0].strip()
        raise _BodyError(f"text that is not JSON ({what} at character {exc.pos})") from None
    except RecursionError:
        raise _BodyError("JSON nested too deeply") from None
    except ValueError:  # e.g. an integer literal beyond Python's digit limit
        raise _BodyError("a JSON number too long to read") from None


def _holds_duplicates(value: object) -> bool:
    """True when a JSON object with a duplicated key is anywhere inside ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _DuplicatedKeys):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _first(keys: Iterable[str], channel: Channel) -> str:
    """Unknown keys first (by name), then the channel's contract order."""
    rank = _RANKS[channel.name]
    return min(keys, key=lambda key: (rank.get(key, -1), key))


def _channel_of(data: Mapping[str, Any]) -> Channel | None:
    """The body's channel; None when its ``Channel`` names none (or is not a string)."""
    name = data.get("Channel")
    if name is None and "Channel" not in data:
        return DEFAULT_CHANNEL
    return CHANNELS.get(name) if isinstance(name, str) else None


def _field_of(error: Mapping[str, Any]) -> str:
    loc = error["loc"]
    return str(loc[0]) if loc else "MessageBody"  # the model-level check: no content


def _invalid_fields(
    data: dict[str, Any], channel: Channel
) -> tuple[dict[str, str], ChannelRequest | None]:
    """Validate; map each invalid key to its message (in error order)."""
    try:
        return {}, channel.validate(data)
    except ValidationError as exc:
        found: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_context=False):
            field = _field_of(error)
            if field in found:
                continue
            if error["type"] == "extra_forbidden":
                found[field] = messages.unknown_key(field, channel.operation)
            elif field == "Channel":
                found[field] = messages.unknown_channel(data.get(field))
            elif not error["loc"]:
                found[field] = messages.NO_CONTENT
            else:
                found[field] = messages.field_error(
                    field, error["type"], error["loc"], error.get("input")
                )
        return found, None


def _valid(data: Mapping[str, Any], invalid: Iterable[str], key: str) -> str | None:
    value = data.get(key)
    if key in invalid or not isinstance(value, str):
        return None
    return value


def _invalid(
    data: Mapping[str, Any], invalid: Iterable[str], sqs_message_id: str, field: str, message: str
) -> InvalidRequest:
    bad = set(invalid)
    return InvalidRequest(
        request_id=_valid(data, bad, "RequestId") or sqs_message_id,
        field=messages.reportable_key(field),
        message=message,
        campaign_id=_valid(data, bad, "CampaignId"),
        destination=_valid(data, bad, "DestinationPhoneNumber"),
        identity=_valid(data, bad, "OriginationIdentity"),
    )


def _parse(body: str | bytes, sqs_message_id: str) -> ParsedRequest | InvalidRequest:
    try:
        data = _decode(body)
    except _BodyError as exc:
        return InvalidRequest(sqs_message_id, "body", messages.body_error(str(exc)))
    if not isinstance(data, dict):
        return InvalidRequest(sqs_message_id, "body", messages.body_error(messages.json_kind(data)))

    duplicated = set(data.duplicates) if isinstance(data, _DuplicatedKeys) else set()
    nested = {key for key, value in data.items() if _holds_duplicates(value)} - duplicated
    if duplicated or nested:
        rest = {key: value for key, value in data.items() if key not in duplicated | nested}
        # Which of the other keys are valid (for the record) by the channel they ask for;
        # the keys the record copies have the same rules in every channel.
        channel = _channel_of(rest) or DEFAULT_CHANNEL
        field = _first(duplicated | nested, channel)
        message = (
            messages.duplicate_key(field) if field in duplicated
            else messages.nested_duplicate_key(field)
        )  # fmt: skip
        found, _ = _invalid_fields(rest, channel)
        return _invalid(rest, found, sqs_message_id, field, message)

    maybe_channel = _channel_of(data)
    if maybe_channel is None:
        # The channel decides which keys and rules apply: nothing else can be judged. The
        # keys the record copies are judged by the default channel's rules (shared by all).
        found, _ = _invalid_fields(data, DEFAULT_CHANNEL)
        found["Channel"] = message = messages.unknown_channel(data["Channel"])
        return _invalid(data, found, sqs_message_id, "Channel", message)
    channel = maybe_channel
    found, request = _invalid_fields(data, channel)
    if request is None:
        field = _first(found, channel)
        return _invalid(data, found, sqs_message_id, field, found[field])
    not_after = request.NotAfter
    envelope = Envelope(
        request_id=request.RequestId or sqs_message_id,
        channel=channel.name,
        campaign_id=request.CampaignId,
        not_after=None if not_after is None else parse_not_after(not_after),
    )
    return ParsedRequest(envelope, channel, request)


def parse_request(body: str | bytes, *, sqs_message_id: str) -> ParsedRequest | InvalidRequest:
    """Parse and validate one SQS message body. Never raises."""
    try:
        return _parse(body, sqs_message_id)
    except Exception:  # a bug here must not poison the queue: report the body as unusable
        return InvalidRequest(sqs_message_id, "body", messages.UNEXPECTED)
