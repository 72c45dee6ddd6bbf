"""The sandbox's SendTextMessage: validated by its API model, throttled in message parts per
identity (a bucket per channel), and a spend limit per channel, through a real client."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sandbox_support import (
    DEST,
    ORIGIN,
    ClientFactory,
    SandboxFactory,
    amz_headers,
    dumps,
    send_args,
)

from worker.sandbox import SandboxConfig


def text_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"DestinationPhoneNumber": DEST, "MessageBody": "Your code is 1234"}
    args.update(overrides)
    return {k: v for k, v in args.items() if v is not None}


async def test_a_text_message_is_sent_and_recorded_with_its_parts(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox()
    client = await make_client(box.url)
    await client.send_text_message(**text_args())  # no identity: the service picks one
    await client.send_text_message(**text_args(OriginationIdentity=ORIGIN, MessageBody="€" * 81))
    await client.send_text_message(**text_args(MessageBody="😀" * 36, MessageType="PROMOTIONAL"))
    sends = box.state.sends
    assert [(s.channel, s.identity, s.parts) for s in sends] == [
        ("SMS", "default", 1),
        ("SMS", ORIGIN, 2),  # 162 septets: 2 parts of 153
        ("SMS", "default", 2),  # 72 code units: 2 parts of 67
    ]
    counters = box.state.counters
    assert counters.accepted_by_channel == {"SMS": 3}
    assert counters.parts_by_channel == {"SMS": 5}


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        ({"MessageBody": None}, "MISSING_PARAMETER", "MessageBody"),
        ({"MessageType": "MARKETING"}, "FIELD_VALIDATION_FAILED", "MessageType"),
        ({"Keyword": "a" * 31}, "FIELD_VALIDATION_FAILED", "Keyword"),
        ({"Keyword": "a\tb"}, "FIELD_VALIDATION_FAILED", "Keyword"),
        ({"DestinationCountryParameters": {"US_ID": "1"}}, "FIELD_VALIDATION_FAILED",
         "DestinationCountryParameters[US_ID]"),
        ({"DestinationCountryParameters": {"IN_ENTITY_ID": "a b"}}, "FIELD_VALIDATION_FAILED",
         "DestinationCountryParameters[IN_ENTITY_ID]"),
    ],
)  # fmt: skip
async def test_invalid_text_messages_are_refused(
    make_sandbox: SandboxFactory,
    make_client: ClientFactory,
    overrides: dict[str, Any],
    reason: str,
    field: str,
) -> None:
    box = await make_sandbox()
    client = await make_client(box.url, validate=False)
    with pytest.raises(client.exceptions.ValidationException) as caught:
        await client.send_text_message(**text_args(**overrides))
    response = caught.value.response
    assert response["Reason"] == reason
    assert field in [f["Name"] for f in response["Fields"]]
    assert box.state.sends == []


async def test_media_urls_on_a_text_message_is_an_unknown_field(
    make_sandbox: SandboxFactory,
) -> None:
    box = await make_sandbox()
    body = text_args(MediaUrls=["s3://media-bucket/a.jpg"])  # botocore will not send it
    async with aiohttp.ClientSession() as http:
        headers = amz_headers("PinpointSMSVoiceV2.SendTextMessage")
        async with http.post(box.url, data=dumps(body), headers=headers) as response:
            status, answer = response.status, await response.json(content_type=None)
    assert (status, answer["__type"], answer["Reason"]) == (
        400,
        "ValidationException",
        "FIELD_VALIDATION_FAILED",
    )
    assert answer["Fields"][0]["Name"] == "MediaUrls"
    assert box.state.sends == []


async def test_sms_is_throttled_in_parts_per_identity_apart_from_mms(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(mps={ORIGIN: 4.0}, burst_s=1.0)  # 4 tokens in the bucket
    client = await make_client(box.url)
    three_parts = "x" * (153 * 2 + 1)
    await client.send_text_message(**text_args(OriginationIdentity=ORIGIN, MessageBody=three_parts))
    with pytest.raises(client.exceptions.ThrottlingException):  # 1 token left, 3 asked
        await client.send_text_message(
            **text_args(OriginationIdentity=ORIGIN, MessageBody=three_parts)
        )
    await client.send_text_message(**text_args(OriginationIdentity=ORIGIN))  # 1 part fits
    await client.send_media_message(**send_args())  # the MMS bucket is its own
    assert box.state.counters.throttled == 1
    box.state.update_config(SandboxConfig(mps={ORIGIN: 4.0, f"{ORIGIN}/SMS": 1.0}))
    assert box.state.config.rate_for(ORIGIN, "SMS") == 1.0
    assert box.state.config.rate_for(ORIGIN, "MMS") == 4.0


async def test_a_spend_limit_stops_one_channel_until_lifted(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(spend_limit_reached={"SMS"})
    client = await make_client(box.url)
    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as caught:
        await client.send_text_message(**text_args())
    assert caught.value.response["Reason"] == "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"
    await client.send_media_message(**send_args())  # MMS is not limited
    box.state.update_config(SandboxConfig(spend_limit_reached={"MMS"}))
    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as caught:
        await client.send_media_message(**send_args())
    assert caught.value.response["Reason"] == "MONTHLY_SPEND_LIMIT_REACHED_FOR_MEDIA"
    box.state.update_config(SandboxConfig())
    await client.send_text_message(**text_args())
    assert box.state.counters.spend_limited == 2
    assert [s.channel for s in box.state.sends] == ["MMS", "SMS"]
