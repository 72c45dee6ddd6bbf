"""The SMS channel's model: every rule accepted and refused, the parts and the rate key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sms_cases import ACCEPTED, ORIGIN, REJECTED, sms

from worker.model import InvalidRequest, ParsedRequest, parse_request
from worker.model.channels import MMS, SMS
from worker.model.rules import RESERVED_CONTEXT_KEY
from worker.model.sms import SmsRequest
from worker.settings import Settings


def parse(body: dict[str, Any]) -> ParsedRequest | InvalidRequest:
    return parse_request(json.dumps(body), sqs_message_id="sqs-1")


@pytest.mark.parametrize(("name", "fields"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
def test_accepted(name: str, fields: dict[str, Any]) -> None:
    body = sms(1, **fields)
    parsed = parse(body)
    assert isinstance(parsed, ParsedRequest), parsed
    assert parsed.channel is SMS and parsed.envelope.channel == "SMS"
    assert isinstance(parsed.payload, SmsRequest)
    sent = {k: v for k, v in body.items() if k not in ("Channel", "RequestId")}
    # The envelope is never sent; the reserved Context key names the request (contract §1).
    sent["Context"] = {**sent.get("Context", {}), RESERVED_CONTEXT_KEY: parsed.request_id}
    assert parsed.api_params() == sent


@pytest.mark.parametrize(("name", "fields", "reason"), REJECTED, ids=[n for n, _, _ in REJECTED])
def test_rejected(name: str, fields: dict[str, Any], reason: str) -> None:
    body = sms(1, **fields)
    result = parse(body)
    assert isinstance(result, InvalidRequest), result
    assert result.field == reason
    assert result.request_id == "sms-1"
    assert "code 1" not in result.message and "+12065550001" not in result.message


def test_media_urls_says_it_belongs_to_another_channel() -> None:
    result = parse(sms(1, MediaUrls=["s3://media-bucket/a.jpg"]))
    assert isinstance(result, InvalidRequest)
    assert "not a SendTextMessage parameter: it belongs to another channel" in result.message


def test_sms_keys_on_an_mms_body_are_errors() -> None:
    body = sms(1, OriginationIdentity=ORIGIN, Keyword="HELP")
    del body["Channel"]
    result = parse(body)
    assert isinstance(result, InvalidRequest) and result.field == "Keyword"


def test_parts_and_rate_keys() -> None:
    long = parse(sms(1, OriginationIdentity=ORIGIN, MessageBody="x" * 161))
    unicode = parse(sms(2, MessageBody="😀" * 36))
    assert isinstance(long, ParsedRequest) and isinstance(unicode, ParsedRequest)
    assert (long.parts, long.rate_key) == (2, f"{ORIGIN}/SMS")
    assert (unicode.parts, unicode.rate_key) == (2, "default/SMS")
    mms = parse({"DestinationPhoneNumber": "+12065550003", "OriginationIdentity": ORIGIN,
                 "MessageBody": "x" * 400})  # fmt: skip
    assert isinstance(mms, ParsedRequest) and mms.channel is MMS
    assert (mms.parts, mms.rate_key) == (1, ORIGIN)


def test_the_sms_entry() -> None:
    assert (SMS.operation, SMS.method, SMS.iam_action) == (
        "SendTextMessage",
        "send_text_message",
        "sms-voice:SendTextMessage",
    )


@pytest.mark.parametrize(
    ("limits", "key", "quota"),
    [
        ("default=20", "+1800/SMS", 20.0),
        ("default=20", "+1800", 20.0),
        ("default=20,+1800=5", "+1800/SMS", 5.0),
        ("default=20,+1800=5", "+1800", 5.0),
        ("default=20,+1800=5,+1800/SMS=40", "+1800/SMS", 40.0),
        ("default=20,+1800=5,+1800/SMS=40", "+1800", 5.0),
        ("default=20,+1800=5,+1800/MMS=2", "+1800", 2.0),
        ("default=20,+1800=5,+1800/MMS=2", "+1800/SMS", 5.0),
        ("default=20,default/SMS=7", "default/SMS", 7.0),
        ("default=9", "default/SMS", 9.0),
        ("default=20,arn:aws:sms-voice:r:1:pool/p-1=3", "arn:aws:sms-voice:r:1:pool/p-1/SMS", 3.0),
        ("default=20,arn:aws:sms-voice:r:1:pool/p-1=3", "arn:aws:sms-voice:r:1:pool/p-1", 3.0),
    ],
)
def test_a_keys_quota_is_looked_up_in_one_place(limits: str, key: str, quota: float) -> None:
    settings = Settings(queue_url="http://q", table="t", rate_limits=limits)
    assert settings.rate_for(key) == quota


def test_the_json_schema_validates_both_channels() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from worker.model import request_json_schema

    validator = jsonschema.Draft202012Validator(request_json_schema())
    for name, fields in ACCEPTED:
        assert validator.is_valid(sms(1, **fields)), name
    # Rules a schema cannot state: phone validity, Python's notion of white space.
    beyond = {"bad destination", "blank body"}
    for name, fields, _ in REJECTED:
        if name not in beyond:
            assert not validator.is_valid(sms(1, **fields)), name
    mms = {"DestinationPhoneNumber": "+12065550100", "OriginationIdentity": ORIGIN,
           "MediaUrls": ["s3://media-b/a.jpg"]}  # fmt: skip
    assert validator.is_valid(mms) and validator.is_valid({**mms, "Channel": "MMS"})
    assert not validator.is_valid({**mms, "Channel": "SMS"})  # an SMS has no MediaUrls
    assert not validator.is_valid({**mms, "Keyword": "HELP"})  # nor an MMS a Keyword
