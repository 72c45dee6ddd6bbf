"""The send-request contract, rule by rule: worker.model parses, rejects, masks, describes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from worker.model import (
    CHANNELS,
    CONTRACT_KEYS,
    ENVELOPE_KEYS,
    MMS_EXTENSIONS,
    InvalidRequest,
    ParsedRequest,
    SendRequest,
    mask_identity,
    mask_phone,
    parse_request,
    request_json_schema,
)
from worker.model.rules import MMS_API_KEYS, SMS_API_KEYS

API_KEYS = CHANNELS["MMS"].api_keys

SQS_ID = "7b1c2f5e-0000-4000-8000-000000000001"
US = "+14155552671"
UK = "+447911123456"
SECRET_BODY = "Your one-time code is 483920, Jane"
DROP = object()  # an override that removes the key
IMAGE = "s3://media-bucket/campaigns/spring/banner.jpg"


def body(**overrides: Any) -> dict[str, Any]:
    """A minimal valid body with ``overrides`` applied (``DROP`` removes a key)."""
    data: dict[str, Any] = {
        "DestinationPhoneNumber": US,
        "OriginationIdentity": "pool-0123456789abcdef",
        "MessageBody": SECRET_BODY,
    }
    for key, value in overrides.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def parse(data: object) -> ParsedRequest | InvalidRequest:
    return parse_request(json.dumps(data), sqs_message_id=SQS_ID)


def accepted(data: object) -> ParsedRequest:
    result = parse(data)
    assert isinstance(result, ParsedRequest), result
    return result


def rejected(data: object | str | bytes) -> InvalidRequest:
    raw = data if isinstance(data, str | bytes) else json.dumps(data)
    result = parse_request(raw, sqs_message_id=SQS_ID)
    assert isinstance(result, InvalidRequest), result
    assert result.message
    return result


# --- valid bodies ------------------------------------------------------------------------

VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", body()),
    ("uk number", body(DestinationPhoneNumber=UK)),
    ("number +12065550100", body(DestinationPhoneNumber="+12065550100")),
    ("french mobile", body(DestinationPhoneNumber="+33612345678")),
    ("identity phone", body(OriginationIdentity="+18005550100")),
    ("identity sender id", body(OriginationIdentity="MySender")),
    (
        "identity arn",
        body(OriginationIdentity="arn:aws:sms-voice:us-east-1:123456789012:pool/pool-abc_1"),
    ),
    ("identity 256", body(OriginationIdentity="a" * 256)),
    ("identity 1", body(OriginationIdentity="a")),
    ("body 1 char", body(MessageBody="x")),
    ("body 1600", body(MessageBody="x" * 1600)),
    ("body 1600 emoji", body(MessageBody="\N{GRINNING FACE}" * 1600)),
    ("body padded", body(MessageBody="  hi  \n")),
    ("media only", body(MessageBody=DROP, MediaUrls=[IMAGE])),
    ("media and body", body(MediaUrls=[IMAGE])),
    ("media uppercase ext", body(MediaUrls=["s3://media-bucket/a/B.JPG"])),
    ("media mixed case ext", body(MediaUrls=["s3://media-bucket/a.JpEg"])),
    ("media bucket 3", body(MediaUrls=["s3://abc/x.png"])),
    ("media bucket 63", body(MediaUrls=["s3://" + "b" * 63 + "/x.png"])),
    ("media bucket dots", body(MediaUrls=["s3://my.bucket-1/x.png"])),
    ("media key spaces", body(MediaUrls=["s3://bucket/my photos/x y.gif"])),
    ("media url 2048", body(MediaUrls=["s3://bucket/" + "k" * 2032 + ".pdf"])),
    ("config set 256", body(ConfigurationSetName="c" * 256)),
    ("config set chars", body(ConfigurationSetName="arn:aws:sms-voice:x/y_z-1")),
    ("max price 0.5", body(MaxPrice="0.5")),
    ("max price .5", body(MaxPrice=".5")),
    ("max price 10.12345", body(MaxPrice="10.12345")),
    ("max price 99.99999", body(MaxPrice="99.99999")),
    ("ttl 5", body(TimeToLive=5)),
    ("ttl 259200", body(TimeToLive=259200)),
    ("context empty", body(Context={})),
    ("context 4", body(Context={f"k{i}": f"v{i}" for i in range(4)})),
    ("context key 100", body(Context={"k" * 100: "v"})),
    ("context key inner space", body(Context={" a key ": "v"})),
    ("context value 800", body(Context={"k": "v" * 800})),
    ("context value inner space", body(Context={"k": "a b"})),
    ("dry run true", body(DryRun=True)),
    ("dry run false", body(DryRun=False)),
    ("protect id", body(ProtectConfigurationId="pc-" + "a" * 253)),
    ("feedback false", body(MessageFeedbackEnabled=False)),
    ("request id 128", body(RequestId="r" * 128)),
    ("request id chars", body(RequestId="order-17.line_2:a")),
    ("campaign id", body(CampaignId="spring.2030:wave-1_a")),
    ("not after Z", body(NotAfter="2030-06-15T12:00:00Z")),
    ("not after +02:00", body(NotAfter="2030-06-15T12:00:00+02:00")),
    ("not after -05:30 fraction", body(NotAfter="2030-06-15T12:00:00.123456789-05:30")),
]


@pytest.mark.parametrize("data", [case for _, case in VALID], ids=[name for name, _ in VALID])
def test_valid_bodies_are_accepted(data: dict[str, Any]) -> None:
    parsed = accepted(data)
    assert parsed.request_id == data.get("RequestId", SQS_ID)
    expected = {key: value for key, value in data.items() if key in API_KEYS}
    assert parsed.payload.api_params() == expected


@pytest.mark.parametrize("ext", MMS_EXTENSIONS)
def test_every_mms_extension_in_any_case(ext: str) -> None:
    for name in (ext, ext.upper(), ext.capitalize()):
        accepted(body(MediaUrls=[f"s3://bucket/file.{name}"]))


# --- invalid bodies, each naming the first invalid field ----------------------------------

INVALID: list[tuple[str, dict[str, Any], str]] = [
    # DestinationPhoneNumber
    ("phone missing", body(DestinationPhoneNumber=DROP), "DestinationPhoneNumber"),
    ("phone no plus", body(DestinationPhoneNumber="14155552671"), "DestinationPhoneNumber"),
    ("phone spaced", body(DestinationPhoneNumber="+1 4155552671"), "DestinationPhoneNumber"),
    ("phone dashes", body(DestinationPhoneNumber="+1-415-555-2671"), "DestinationPhoneNumber"),
    ("phone newline", body(DestinationPhoneNumber=US + "\n"), "DestinationPhoneNumber"),
    ("phone trunk 0", body(DestinationPhoneNumber="+4407911123456"), "DestinationPhoneNumber"),
    ("phone too short", body(DestinationPhoneNumber="+1415555267"), "DestinationPhoneNumber"),
    ("phone 16 digits", body(DestinationPhoneNumber="+1234567890123456"), "DestinationPhoneNumber"),
    ("phone 1 digit", body(DestinationPhoneNumber="+1"), "DestinationPhoneNumber"),
    ("phone not a number", body(DestinationPhoneNumber="+12345"), "DestinationPhoneNumber"),
    (
        "phone fullwidth digits",
        body(DestinationPhoneNumber="+\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff12\uff16"),
        "DestinationPhoneNumber",
    ),
    ("phone as number", body(DestinationPhoneNumber=14155552671), "DestinationPhoneNumber"),
    ("phone empty", body(DestinationPhoneNumber=""), "DestinationPhoneNumber"),
    # OriginationIdentity
    ("identity missing", body(OriginationIdentity=DROP), "OriginationIdentity"),
    ("identity empty", body(OriginationIdentity=""), "OriginationIdentity"),
    ("identity 257", body(OriginationIdentity="a" * 257), "OriginationIdentity"),
    ("identity space", body(OriginationIdentity="pool abc"), "OriginationIdentity"),
    ("identity dot", body(OriginationIdentity="pool.abc"), "OriginationIdentity"),
    ("identity newline", body(OriginationIdentity="pool-abc\n"), "OriginationIdentity"),
    ("identity accent", body(OriginationIdentity="expéditeur"), "OriginationIdentity"),
    ("identity list", body(OriginationIdentity=["pool-abc"]), "OriginationIdentity"),
    # MessageBody / MediaUrls
    ("neither", body(MessageBody=DROP), "MessageBody"),
    ("body empty", body(MessageBody=""), "MessageBody"),
    ("body blank", body(MessageBody=" \t\n\u3000"), "MessageBody"),
    ("body 1601", body(MessageBody="x" * 1601), "MessageBody"),
    ("body number", body(MessageBody=42), "MessageBody"),
    ("body lone surrogate", body(MessageBody="hi \ud800"), "MessageBody"),
    ("media 2 entries", body(MediaUrls=[IMAGE, IMAGE]), "MediaUrls"),
    ("media empty list", body(MediaUrls=[]), "MediaUrls"),
    ("media string", body(MediaUrls=IMAGE), "MediaUrls"),
    ("media number item", body(MediaUrls=[1]), "MediaUrls"),
    ("media https", body(MediaUrls=["https://bucket.s3.amazonaws.com/x.jpg"]), "MediaUrls"),
    ("media S3 scheme", body(MediaUrls=["S3://bucket/x.jpg"]), "MediaUrls"),
    ("media bucket 2", body(MediaUrls=["s3://ab/x.jpg"]), "MediaUrls"),
    ("media bucket 64", body(MediaUrls=["s3://" + "b" * 64 + "/x.jpg"]), "MediaUrls"),
    ("media bucket upper", body(MediaUrls=["s3://Bucket/x.jpg"]), "MediaUrls"),
    ("media bucket underscore", body(MediaUrls=["s3://my_bucket/x.jpg"]), "MediaUrls"),
    ("media no key", body(MediaUrls=["s3://bucket/"]), "MediaUrls"),
    ("media no slash", body(MediaUrls=["s3://bucket"]), "MediaUrls"),
    ("media bad ext", body(MediaUrls=["s3://bucket/x.exe"]), "MediaUrls"),
    ("media no ext", body(MediaUrls=["s3://bucket/jpg"]), "MediaUrls"),
    ("media ext only", body(MediaUrls=["s3://bucket/.jpg"]), "MediaUrls"),
    ("media ext suffix", body(MediaUrls=["s3://bucket/x.jpgx"]), "MediaUrls"),
    ("media newline", body(MediaUrls=["s3://bucket/x.jpg\n"]), "MediaUrls"),
    ("media control char", body(MediaUrls=["s3://bucket/a\tb.jpg"]), "MediaUrls"),
    ("media url 2049", body(MediaUrls=["s3://bucket/" + "k" * 2033 + ".pdf"]), "MediaUrls"),
    ("media only but empty", body(MessageBody=DROP, MediaUrls=[]), "MediaUrls"),
    # ConfigurationSetName / ProtectConfigurationId
    ("config set empty", body(ConfigurationSetName=""), "ConfigurationSetName"),
    ("config set 257", body(ConfigurationSetName="c" * 257), "ConfigurationSetName"),
    ("config set plus", body(ConfigurationSetName="a+b"), "ConfigurationSetName"),
    ("config set dot", body(ConfigurationSetName="a.b"), "ConfigurationSetName"),
    ("protect id 257", body(ProtectConfigurationId="p" * 257), "ProtectConfigurationId"),
    ("protect id space", body(ProtectConfigurationId="p c"), "ProtectConfigurationId"),
    # MaxPrice
    ("max price 100.1", body(MaxPrice="100.1"), "MaxPrice"),
    ("max price integer", body(MaxPrice="1"), "MaxPrice"),
    ("max price trailing dot", body(MaxPrice="1."), "MaxPrice"),
    ("max price 6 decimals", body(MaxPrice="0.123456"), "MaxPrice"),
    ("max price comma", body(MaxPrice="0,5"), "MaxPrice"),
    ("max price negative", body(MaxPrice="-0.5"), "MaxPrice"),
    ("max price newline", body(MaxPrice="0.5\n"), "MaxPrice"),
    ("max price number", body(MaxPrice=0.5), "MaxPrice"),
    # TimeToLive
    ("ttl 4", body(TimeToLive=4), "TimeToLive"),
    ("ttl 259201", body(TimeToLive=259201), "TimeToLive"),
    ("ttl negative", body(TimeToLive=-5), "TimeToLive"),
    ("ttl true", body(TimeToLive=True), "TimeToLive"),
    ("ttl string", body(TimeToLive="5"), "TimeToLive"),
    ("ttl float", body(TimeToLive=5.0), "TimeToLive"),
    ("ttl huge", body(TimeToLive=10**40), "TimeToLive"),
    # Context
    ("context 5 (one is the worker's)", body(Context={f"k{i}": "v" for i in range(5)}), "Context"),
    ("context reserved key", body(Context={"sms-worker:RequestId": "r"}), "Context"),
    ("context key 101", body(Context={"k" * 101: "v"}), "Context"),
    ("context key empty", body(Context={"": "v"}), "Context"),
    ("context key blank", body(Context={"  ": "v"}), "Context"),
    ("context value empty", body(Context={"k": ""}), "Context"),
    ("context value leading space", body(Context={"k": " v"}), "Context"),
    ("context value trailing newline", body(Context={"k": "v\n"}), "Context"),
    ("context value 801", body(Context={"k": "v" * 801}), "Context"),
    ("context value number", body(Context={"k": 1}), "Context"),
    ("context value null", body(Context={"k": None}), "Context"),
    ("context value object", body(Context={"k": {"a": "b"}}), "Context"),
    ("context list", body(Context=[["k", "v"]]), "Context"),
    # booleans
    ("dry run string", body(DryRun="true"), "DryRun"),
    ("dry run 1", body(DryRun=1), "DryRun"),
    ("feedback 0", body(MessageFeedbackEnabled=0), "MessageFeedbackEnabled"),
    # envelope
    ("request id empty", body(RequestId=""), "RequestId"),
    ("request id 129", body(RequestId="r" * 129), "RequestId"),
    ("request id slash", body(RequestId="a/b"), "RequestId"),
    ("request id number", body(RequestId=17), "RequestId"),
    ("campaign id 129", body(CampaignId="c" * 129), "CampaignId"),
    ("campaign id space", body(CampaignId="spring sale"), "CampaignId"),
    ("not after no offset", body(NotAfter="2030-06-15T12:00:00"), "NotAfter"),
    ("not after date only", body(NotAfter="2030-06-15"), "NotAfter"),
    ("not after space", body(NotAfter="2030-06-15 12:00:00Z"), "NotAfter"),
    ("not after no seconds", body(NotAfter="2030-06-15T12:00Z"), "NotAfter"),
    ("not after feb 30", body(NotAfter="2030-02-30T12:00:00Z"), "NotAfter"),
    ("not after hour 24", body(NotAfter="2030-06-15T24:00:00Z"), "NotAfter"),
    ("not after offset 24h", body(NotAfter="2030-06-15T12:00:00+24:00"), "NotAfter"),
    ("not after newline", body(NotAfter="2030-06-15T12:00:00Z\n"), "NotAfter"),
    ("not after epoch", body(NotAfter=1907668800), "NotAfter"),
    ("not after overflows", body(NotAfter="9999-12-31T23:59:59-01:00"), "NotAfter"),
    # unknown keys
    ("unknown key", body(Priority="high"), "Priority"),
    ("wrong case key", body(MessageBody=DROP, messageBody="hi"), "messageBody"),
    ("unknown nested key", body(Extra={"a": 1}), "Extra"),
    ("empty key", body(**{"": 1}), "UNNAMED_KEY"),
    ("phone number as a key", body(**{"+12065550100": "x"}), "UNNAMED_KEY"),
    ("e-mail as a key", body(**{"ann@example.com": "x"}), "UNNAMED_KEY"),
    ("digits in a key", body(**{"Ref12065550100": "x"}), "UNNAMED_KEY"),
    ("one digit in a key", body(**{"MessageBody2": "x"}), "UNNAMED_KEY"),
    ("hyphen in a key", body(**{"first-name": "x"}), "UNNAMED_KEY"),
    ("snake case key", body(message_body="x"), "message_body"),
]


@pytest.mark.parametrize(
    ("data", "field"),
    [(case, field) for _, case, field in INVALID],
    ids=[name for name, _, _ in INVALID],
)
def test_invalid_bodies_name_the_field(data: dict[str, Any], field: str) -> None:
    result = rejected(data)
    assert result.field == field
    if field in CONTRACT_KEYS:
        assert result.message.startswith(field) or field == "MessageBody"
    for value in (US, SECRET_BODY, data.get("DestinationPhoneNumber"), data.get("MessageBody")):
        if isinstance(value, str) and len(value) >= 5:
            assert value not in result.message
    for value in data.get("Context", {}).values() if isinstance(data.get("Context"), dict) else ():
        if isinstance(value, str) and len(value) >= 5:
            assert value not in result.message


@pytest.mark.parametrize("key", CONTRACT_KEYS)
def test_null_is_invalid_for_every_key(key: str) -> None:
    sms_only = key in SMS_API_KEYS and key not in MMS_API_KEYS
    result = rejected(body(**{key: None}, **({"Channel": "SMS"} if sms_only else {})))
    assert result.field == key
    assert "null" in result.message


def test_unknown_keys_come_first_then_contract_order() -> None:
    data = body(Zeta=1, Alpha=2, TimeToLive=1, DestinationPhoneNumber="+1", NotAfter="x")
    assert rejected(data).field == "Alpha"
    data = body(TimeToLive=1, DestinationPhoneNumber="+1", NotAfter="x", RequestId="r r")
    assert rejected(data).field == "DestinationPhoneNumber"
    assert rejected(body(TimeToLive=1, MaxPrice="x", NotAfter="x")).field == "MaxPrice"


def test_an_unknown_key_is_named_only_when_shaped_like_a_parameter_name() -> None:
    """A key's name is the producer's text: it reaches ErrorReason and the message only when
    it looks like a parameter name (it might otherwise be a phone number or a name)."""
    result = rejected(body(MesageBody="hi"))
    assert result.field == "MesageBody"
    assert "did you mean MessageBody?" in result.message
    for key in ("K" * 300, "bad\nkey\x00", "Ann Smith", "+447700900123", "x" * 65):
        result = rejected(body(**{key: 1}))
        assert result.field == "UNNAMED_KEY", key
        assert key not in result.message and "not shown" in result.message


def test_a_misspelt_key_gets_a_hint_named_or_not() -> None:
    """The hint is one of our keys (difflib, ignoring case): it is given even when the
    producer's own name is not shown."""
    for key, hint in [
        ("messageBody", "MessageBody"),
        ("message_body", "MessageBody"),
        ("DestinationPhoneNumbr", "DestinationPhoneNumber"),
        ("MessageBody2", "MessageBody"),
        ("Context 12065550100", None),
        ("Priority", None),
    ]:
        result = rejected(body(**{key: "x"}))
        if hint is None:
            assert "did you mean" not in result.message, key
        else:
            assert f"(did you mean {hint}?)" in result.message, key
        if result.field == "UNNAMED_KEY":
            assert key not in result.message and "12065550100" not in result.message


def test_a_duplicated_unknown_key_is_not_named_unless_plain() -> None:
    raw = json.dumps(body())[:-1]
    result = rejected(raw + ', "+12065550100": 1, "+12065550100": 2}')
    assert result.field == "UNNAMED_KEY" and "2065550100" not in result.message
    assert "given more than once" in result.message
    result = rejected(raw + ', "Extra": 1, "Extra": 2}')
    assert result.field == "Extra" and "Key 'Extra'" in result.message


def test_a_json_syntax_error_quotes_nothing_from_the_body() -> None:
    result = rejected('{"MessageBody": "secret \\q +12065550100"')
    assert result.field == "body" and "not JSON" in result.message
    assert "secret" not in result.message and "2065550100" not in result.message


# --- the body as a whole -------------------------------------------------------------------

BODY_ERRORS: list[tuple[str, str | bytes]] = [
    ("empty", ""),
    ("not json", "DestinationPhoneNumber=+14155552671"),
    ("truncated", '{"DestinationPhoneNumber": "+14155552671"'),
    ("array", json.dumps([body()])),
    ("string", json.dumps("hello")),
    ("number", "42"),
    ("null", "null"),
    ("not utf-8", b'{"MessageBody": "caf\xe9"}'),
    ("utf-8 bom", "\ufeff" + json.dumps(body())),
    ("nan", '{"DestinationPhoneNumber": "+14155552671", "TimeToLive": NaN}'),
    ("infinity", '{"TimeToLive": Infinity}'),
    ("minus infinity", '{"Context": {"a": -Infinity}}'),
    ("float overflow", '{"TimeToLive": 1e400}'),
    ("integer too long", '{"TimeToLive": ' + "9" * 5000 + "}"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000),
    ("deep object nesting", '{"a":' * 50_000 + "1" + "}" * 50_000),
]


@pytest.mark.parametrize("raw", [raw for _, raw in BODY_ERRORS], ids=[n for n, _ in BODY_ERRORS])
def test_unusable_bodies_are_reported_as_body(raw: str | bytes) -> None:
    result = rejected(raw)
    assert result.field == "body"
    assert result.request_id == SQS_ID
    assert result.destination is None


def test_bytes_body_is_utf8_json() -> None:
    raw = json.dumps(body(MessageBody="café \N{GRINNING FACE}"), ensure_ascii=False)
    parsed = parse_request(raw.encode("utf-8"), sqs_message_id=SQS_ID)
    assert isinstance(parsed, ParsedRequest)
    assert parsed.payload.MessageBody == "café \N{GRINNING FACE}"


def test_duplicate_top_level_key_is_rejected() -> None:
    raw = (
        '{"DestinationPhoneNumber": "+14155552671", "OriginationIdentity": "pool-1",'
        ' "MessageBody": "a", "MessageBody": "b", "RequestId": "req-1"}'
    )
    result = rejected(raw)
    assert result.field == "MessageBody"
    assert "more than once" in result.message
    assert result.request_id == "req-1"
    assert result.destination == US


def test_duplicated_request_id_is_not_trusted() -> None:
    raw = '{"RequestId": "a", "RequestId": "b", "MessageBody": "x"}'
    result = rejected(raw)
    assert (result.field, result.request_id) == ("RequestId", SQS_ID)


def test_duplicate_key_inside_context_names_context() -> None:
    raw = json.dumps(body())[:-1] + ', "Context": {"k": "v", "k": "w"}}'
    result = rejected(raw)
    assert result.field == "Context"


def test_nan_is_rejected_even_inside_unknown_keys() -> None:
    assert rejected('{"Foo": [1, NaN]}').field == "body"


# --- ids and what an invalid request still tells ---------------------------------------------


def test_request_id_defaults_to_the_sqs_message_id() -> None:
    assert accepted(body()).request_id == SQS_ID
    assert accepted(body(RequestId="order-42")).request_id == "order-42"


def test_invalid_request_id_is_keyed_by_the_sqs_message_id() -> None:
    result = rejected(body(RequestId="not valid!", CampaignId="spring"))
    assert (result.request_id, result.field) == (SQS_ID, "RequestId")
    assert result.campaign_id == "spring"


def test_invalid_request_keeps_the_valid_keys() -> None:
    result = rejected(body(RequestId="req-9", CampaignId="spring", TimeToLive=1))
    assert result.field == "TimeToLive"
    assert result.request_id == "req-9"
    assert result.campaign_id == "spring"
    assert result.destination == US
    assert result.identity == "pool-0123456789abcdef"


def test_invalid_request_drops_invalid_keys() -> None:
    result = rejected(
        body(DestinationPhoneNumber="+1", OriginationIdentity="a b", CampaignId="c c")
    )
    assert (result.destination, result.identity, result.campaign_id) == (None, None, None)
    assert result.request_id == SQS_ID


def test_messages_never_hold_the_number_or_the_body() -> None:
    number = "+4407911123456"
    result = rejected(body(DestinationPhoneNumber=number, MessageBody=" "))
    assert number not in result.message
    assert "07911123456" not in result.message
    result = rejected(body(MessageBody="x" * 1601))
    assert "xxxxx" not in result.message
    result = rejected(body(MessageBody=SECRET_BODY, Context={"k": SECRET_BODY + " "}))
    assert SECRET_BODY not in result.message


# --- the model itself ---------------------------------------------------------------------


def test_api_params_hold_only_the_given_api_members() -> None:
    data = body(
        MediaUrls=[IMAGE],
        ConfigurationSetName="cs",
        MaxPrice="0.5",
        TimeToLive=60,
        Context={"k": "v"},
        DryRun=False,
        ProtectConfigurationId="pc",
        MessageFeedbackEnabled=True,
        RequestId="r",
        CampaignId="c",
        NotAfter="2030-06-15T12:00:00+02:00",
    )
    params = accepted(data).payload.api_params()
    assert set(params) == set(API_KEYS)
    assert not set(params) & set(ENVELOPE_KEYS)
    assert params == {key: data[key] for key in API_KEYS}
    assert accepted(body()).payload.api_params() == body()


def test_api_params_are_copies() -> None:
    request = accepted(body(Context={"k": "v"}, MediaUrls=[IMAGE])).payload
    params = request.api_params()
    params["Context"] = {}
    assert request.Context == {"k": "v"}


def test_not_after_is_an_aware_utc_datetime() -> None:
    request = accepted(body(NotAfter="2030-06-15T12:00:00+02:00")).payload
    assert request.not_after == datetime(2030, 6, 15, 10, 0, tzinfo=UTC)
    assert request.not_after is not None
    assert request.not_after.utcoffset() is not None
    assert accepted(body()).payload.not_after is None
    assert "NotAfter" not in accepted(body(NotAfter="2030-06-15T12:00:00Z")).payload.api_params()


def test_model_is_frozen_and_strict() -> None:
    request = accepted(body()).payload
    with pytest.raises(ValidationError):
        request.MessageBody = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SendRequest(DestinationPhoneNumber=US, OriginationIdentity="p", MessageBody=None)
    with pytest.raises(ValidationError):
        SendRequest.model_validate(body(TimeToLive="60"))


def test_model_errors_hide_the_input() -> None:
    with pytest.raises(ValidationError) as info:
        SendRequest.model_validate(body(DestinationPhoneNumber="+4407911123456"))
    assert "07911123456" not in str(info.value)


# --- JSON Schema --------------------------------------------------------------------------


def test_schema_states_the_rules() -> None:
    union = request_json_schema()
    text = json.dumps(union)
    assert union["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    branches = union["oneOf"]
    assert isinstance(branches, list) and len(branches) == len(CHANNELS)
    schema = branches[0]  # MMS, the default channel
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["DestinationPhoneNumber", "OriginationIdentity"]
    assert schema["anyOf"] == [{"required": ["MessageBody"]}, {"required": ["MediaUrls"]}]
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert list(properties) == list(MMS_API_KEYS + ENVELOPE_KEYS)
    assert properties["Channel"]["const"] == "MMS"
    sms = branches[1]
    assert sms["required"] == ["DestinationPhoneNumber", "MessageBody", "Channel"]
    assert list(sms["properties"]) == list(SMS_API_KEYS + ENVELOPE_KEYS)
    assert sms["properties"]["Channel"]["const"] == "SMS"
    assert sms["properties"]["Context"] == properties["Context"]  # one field, both channels
    assert sms["properties"]["DestinationCountryParameters"]["maxProperties"] == 10
    assert properties["TimeToLive"] == {
        "description": properties["TimeToLive"]["description"],
        "maximum": 259200,
        "minimum": 5,
        "title": "TimeToLive",
        "type": "integer",
    }
    assert properties["MediaUrls"]["minItems"] == properties["MediaUrls"]["maxItems"] == 1
    assert properties["Context"]["maxProperties"] == 4
    assert properties["Context"]["propertyNames"]["not"] == {"const": "sms-worker:RequestId"}
    assert properties["Context"]["propertyNames"]["maxLength"] == 100
    assert properties["Context"]["additionalProperties"]["maxLength"] == 800
    assert properties["MaxPrice"]["pattern"] == r"^[0-9]{0,2}\.[0-9]{1,5}$"
    assert '"null"' not in text
    assert '"default"' not in text


def test_schema_accepts_whatever_the_parser_accepts() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = request_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for _, data in VALID:
        assert validator.is_valid(data), data
    for name, data, field in INVALID:
        if field in ("DestinationPhoneNumber", "NotAfter", "MessageBody", "Context"):
            continue  # a schema cannot state phone validity, calendar dates, Python's isspace
        if name.endswith("newline") or name == "ttl float":
            continue  # jsonschema runs patterns with Python's re ($ before a final newline)
        assert not validator.is_valid(data), name  # and JSON Schema counts 5.0 as integer


# --- masking ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+12065550100", "+1***00"),
        ("+447911123456", "+44***56"),
        ("+3312345678", "+33***78"),
        ("+123456789", "+1***89"),
        ("+12345678", "+1***78"),
        ("+12345", "+***"),
        ("", "***"),
    ],
)
def test_mask_phone(number: str, masked: str) -> None:
    assert mask_phone(number) == masked
    assert number == "" or mask_phone(number) != number


@pytest.mark.parametrize(
    ("identity", "masked"),
    [
        ("+18005550100", "+1***00"),
        ("pool-0123456789abcdef", "pool-0123456789abcdef"),
        ("phone-0123456789abcdef", "phone-0123456789abcdef"),
        ("arn:aws:sms-voice:us-east-1:123456789012:pool/pool-1", None),
        ("MySender", "MySender"),
        ("+Sender", "+Sender"),
    ],
)
def test_mask_identity(identity: str, masked: str | None) -> None:
    assert mask_identity(identity) == (identity if masked is None else masked)
