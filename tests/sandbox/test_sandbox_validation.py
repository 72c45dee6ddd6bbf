"""Requests are validated against botocore's model; errors reach the client fully modeled."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sandbox_support import DEST, amz_headers, dumps, send_args

from worker.sandbox import RunningSandbox
from worker.sandbox.validation import input_shape, validate, validate_send_media_message

INVALID_CASES = [
    pytest.param({"DestinationPhoneNumber": "2065550100x"}, "DestinationPhoneNumber", id="e164"),
    pytest.param({"DestinationPhoneNumber": "+0206555"}, "DestinationPhoneNumber", id="e164-0"),
    pytest.param({"OriginationIdentity": "pool id"}, "OriginationIdentity", id="identity"),
    pytest.param({"MessageBody": "x" * 1601}, "MessageBody", id="body-too-long"),
    pytest.param({"MessageBody": "   "}, "MessageBody", id="body-blank"),
    pytest.param({"MediaUrls": ["s3://bkt/a.jpg", "s3://bkt/b.jpg"]}, "MediaUrls", id="2-urls"),
    pytest.param({"MediaUrls": []}, "MediaUrls", id="0-urls"),
    pytest.param({"MediaUrls": ["https://example.com/a.jpg"]}, "MediaUrls[0]", id="url"),
    pytest.param({"MaxPrice": "10.123456"}, "MaxPrice", id="max-price-long"),
    pytest.param({"MaxPrice": "abc"}, "MaxPrice", id="max-price-pattern"),
    pytest.param({"TimeToLive": 4}, "TimeToLive", id="ttl-low"),
    pytest.param({"TimeToLive": 259201}, "TimeToLive", id="ttl-high"),
    pytest.param({"Context": {f"k{i}": "v" for i in range(6)}}, "Context", id="context-6"),
    pytest.param({"Context": {"k": " padded "}}, "Context[k]", id="context-value"),
    pytest.param({"ConfigurationSetName": "bad name!"}, "ConfigurationSetName", id="config-set"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_CASES)
async def test_invalid_field_raises_modeled_validation_exception(
    box: RunningSandbox, raw_client: Any, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(raw_client.exceptions.ValidationException) as caught:
        await raw_client.send_media_message(**send_args(**overrides))

    response = caught.value.response
    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Reason"] == "FIELD_VALIDATION_FAILED"
    assert {f["Name"] for f in response["Fields"]} == {field}
    assert "validation error" in response["Error"]["Message"]
    assert field in response["Error"]["Message"]
    assert DEST not in response["Error"]["Message"]  # values are never echoed
    assert box.state.counters.validation_errors == 1
    assert box.state.sends == []


async def test_missing_required_member_is_missing_parameter(raw_client: Any) -> None:
    with pytest.raises(raw_client.exceptions.ValidationException) as caught:
        await raw_client.send_media_message(**send_args(DestinationPhoneNumber=None))
    assert caught.value.response["Reason"] == "MISSING_PARAMETER"
    assert caught.value.response["Fields"][0]["Name"] == "DestinationPhoneNumber"


async def test_neither_body_nor_media_is_missing_parameter(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException) as caught:
        await client.send_media_message(**send_args(MessageBody=None, MediaUrls=None))
    assert caught.value.response["Reason"] == "MISSING_PARAMETER"


async def test_several_errors_are_all_reported(raw_client: Any) -> None:
    with pytest.raises(raw_client.exceptions.ValidationException) as caught:
        await raw_client.send_media_message(**send_args(TimeToLive=1, MaxPrice="abc"))
    response = caught.value.response
    assert {f["Name"] for f in response["Fields"]} == {"TimeToLive", "MaxPrice"}
    assert response["Error"]["Message"].startswith("2 validation errors detected: ")


async def _post(url: str, body: bytes, target: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = amz_headers() if target is None else amz_headers(target)
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"Bogus": 1}, "Bogus", id="unknown-member"),
        pytest.param({"TimeToLive": "60"}, "TimeToLive", id="int-as-string"),
        pytest.param({"TimeToLive": True}, "TimeToLive", id="bool-as-int"),
        pytest.param({"DryRun": "yes"}, "DryRun", id="string-as-bool"),
        pytest.param({"MediaUrls": "s3://bkt/a.jpg"}, "MediaUrls", id="string-as-list"),
        pytest.param({"Context": {"k": 1}}, "Context[k]", id="map-value-type"),
    ],
)
async def test_hand_made_bodies_botocore_cannot_send(
    box: RunningSandbox, overrides: dict[str, Any], field: str
) -> None:
    status, body = await _post(box.url, dumps(send_args(**overrides)))
    assert status == 400
    assert body["__type"] == "ValidationException"
    assert body["Reason"] == "FIELD_VALIDATION_FAILED"
    assert [f["Name"] for f in body["Fields"]] == [field]


async def test_malformed_json_is_serialization_exception(box: RunningSandbox) -> None:
    status, body = await _post(box.url, b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")


async def test_unknown_operation(box: RunningSandbox, raw_client: Any) -> None:
    status, body = await _post(box.url, b"{}", target="PinpointSMSVoiceV2.Nope")
    assert (status, body["__type"]) == (400, "UnknownOperationException")

    with pytest.raises(raw_client.exceptions.ClientError) as caught:
        await raw_client.send_voice_message(
            DestinationPhoneNumber=DEST, OriginationIdentity="+18005550100", MessageBody="hi"
        )
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    assert box.state.counters.unknown_operations == 2


def test_every_member_of_a_full_request_is_valid() -> None:
    request = send_args(
        ConfigurationSetName="arn:aws:sms-voice:us-east-1:123456789012:configuration-set/cs",
        MaxPrice="0.05",
        TimeToLive=259200,
        Context={"order": "42", "tenant": "a b"},
        DryRun=False,
        ProtectConfigurationId="protect-1",
        MessageFeedbackEnabled=True,
    )
    assert validate_send_media_message(request) is None
    assert set(request) == set(input_shape().members)  # covers the whole model


def test_null_members_count_as_absent() -> None:
    assert validate_send_media_message({**send_args(), "MaxPrice": None}) is None
    invalid = validate_send_media_message({**send_args(), "OriginationIdentity": None})
    assert invalid is not None
    assert invalid[0] == "MISSING_PARAMETER"


def test_non_object_body_is_invalid() -> None:
    errors = validate(input_shape(), ["not", "an", "object"])
    assert [e.name for e in errors] == ["$"]
