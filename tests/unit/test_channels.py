"""The channel registry: lookup, the unknown channel, each entry's fields, and what reads it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from worker.model import (
    CHANNELS,
    DEFAULT_CHANNEL,
    ENVELOPE_KEYS,
    InvalidRequest,
    MmsRequest,
    ParsedRequest,
    UnknownChannel,
    channel_named,
    parse_request,
)
from worker.model.channels import BY_OPERATION, MMS, SMS, operations
from worker.model.rules import MMS_API_KEYS

US = "+12065550100"


def body(**overrides: Any) -> str:
    data: dict[str, Any] = {
        "DestinationPhoneNumber": US,
        "OriginationIdentity": "pool-1",
        "MessageBody": "hi",
    }
    data.update(overrides)
    return json.dumps(data)


def test_lookup_by_name_and_operation() -> None:
    assert channel_named("MMS") is MMS is CHANNELS["MMS"] is DEFAULT_CHANNEL
    assert BY_OPERATION["SendMediaMessage"] is MMS
    assert channel_named("SMS") is SMS is CHANNELS["SMS"]
    assert BY_OPERATION["SendTextMessage"] is SMS
    assert operations() == ("SendMediaMessage", "SendTextMessage")
    assert list(CHANNELS) == ["MMS", "SMS"]


@pytest.mark.parametrize("name", ["sms", "mms", "", "VOICE"])
def test_an_unknown_channel_is_an_error(name: str) -> None:
    with pytest.raises(UnknownChannel) as info:
        channel_named(name)
    assert info.value.name == name
    assert "MMS" in str(info.value)


def test_the_registry_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        CHANNELS["SMS"] = MMS  # type: ignore[index]


def test_the_mms_entry() -> None:
    assert MMS.name == "MMS"
    assert MMS.operation == "SendMediaMessage"
    assert MMS.iam_action == "sms-voice:SendMediaMessage"
    assert MMS.method == "send_media_message"
    assert MMS.model is MmsRequest
    assert MMS.api_keys == MMS_API_KEYS
    assert not set(MMS.api_keys) & set(ENVELOPE_KEYS)
    request = MMS.validate(json.loads(body(OriginationIdentity="+18005550100")))
    assert MMS.rate_key(request) == "+18005550100"


@pytest.mark.parametrize("channel", [None, "MMS"])
def test_absent_or_mms_channel_parses_as_mms(channel: str | None) -> None:
    extra = {} if channel is None else {"Channel": channel}
    parsed = parse_request(
        body(CampaignId="c-1", NotAfter="2030-01-01T02:00:00+02:00", DryRun=True, **extra),
        sqs_message_id="sqs-1",
    )
    assert isinstance(parsed, ParsedRequest)
    assert parsed.channel is MMS
    assert parsed.envelope.channel == "MMS"
    assert parsed.envelope.request_id == parsed.request_id == "sqs-1"
    assert parsed.envelope.campaign_id == "c-1"
    assert parsed.envelope.not_after is not None
    assert parsed.envelope.not_after.isoformat() == "2030-01-01T00:00:00+00:00"
    assert parsed.rate_key == parsed.identity == "pool-1"
    assert parsed.destination == US
    assert parsed.dry_run is True
    # The envelope is never sent, Channel included; the reserved Context key names the request.
    assert parsed.api_params() == {
        "DestinationPhoneNumber": US,
        "OriginationIdentity": "pool-1",
        "MessageBody": "hi",
        "DryRun": True,
        "Context": {"sms-worker:RequestId": "sqs-1"},
    }


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("VOICE", "a string that names no channel"),
        ("mms", "a string that names no channel"),
        ("+12065550199", "a string that names no channel"),
        (5, "a number"),
        (["MMS"], "an array"),
        (None, "null"),
    ],
)
def test_an_unknown_channel_value_is_an_invalid_request(value: object, got: str) -> None:
    result = parse_request(body(Channel=value, RequestId="r-1", Zzz=1), sqs_message_id="sqs-1")
    assert isinstance(result, InvalidRequest)
    assert result.field == "Channel"  # before the unknown key: the channel decides the keys
    assert result.message.startswith('Channel must be "MMS"')
    assert got in result.message
    assert "+12065550199" not in result.message
    # What the record copies is still known.
    assert (result.request_id, result.destination, result.identity) == ("r-1", US, "pool-1")


def test_an_unknown_key_names_the_channels_operation() -> None:
    result = parse_request(body(Channel="MMS", Keyword="x"), sqs_message_id="sqs-1")
    assert isinstance(result, InvalidRequest)
    assert result.field == "Keyword"
    assert "is not a SendMediaMessage parameter" in result.message


def test_a_duplicated_channel_is_reported_as_such() -> None:
    raw = '{"DestinationPhoneNumber": "%s", "MessageBody": "hi", "Channel": "MMS", '
    raw += '"Channel": "SMS", "OriginationIdentity": "pool-1"}'
    result = parse_request(raw % US, sqs_message_id="sqs-1")
    assert isinstance(result, InvalidRequest)
    assert result.field == "Channel"
    assert "more than once" in result.message
    assert result.destination == US


def test_the_sandbox_handles_every_channels_operation() -> None:
    from worker.sandbox.state import HANDLERS, TARGET_PREFIX
    from worker.sandbox.validation import VALIDATORS

    assert set(VALIDATORS) == set(operations())
    assert set(HANDLERS) == {TARGET_PREFIX + c.operation for c in CHANNELS.values()}


def test_the_hot_path_client_has_a_method_per_channel() -> None:
    from worker.aws.fastpath import SmsCalls

    calls: list[tuple[str, dict[str, Any]]] = []

    class Api:
        async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
            calls.append((operation, params))
            return {"MessageId": "m"}

    client = SmsCalls(Api())  # type: ignore[arg-type]
    for channel in CHANNELS.values():
        answer = asyncio.run(getattr(client, channel.method)(DestinationPhoneNumber=US))
        assert answer == {"MessageId": "m"}
    assert calls == [(c.operation, {"DestinationPhoneNumber": US}) for c in CHANNELS.values()]


def test_metrics_help_names_the_operations() -> None:
    from worker.observe import exposition

    assert exposition._SEND_OPERATIONS == "SendMediaMessage and SendTextMessage"
