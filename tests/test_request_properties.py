"""Property tests of parse_request against an independent statement of the contract.

The checker below is written from the contract table with plain string code, ``re`` and
``phonenumbers``; it shares nothing with worker.model. Whatever the parser accepts, the
checker must call valid, and the other way round.
"""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from worker.model import InvalidRequest, ParsedRequest, parse_request
from worker.model.messages import BODY_RULE, NO_CONTENT, RULES, reportable_key

SQS_ID = "sqs-0001"
FAST = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- the independent checker --------------------------------------------------------------

ORDER = [
    "DestinationPhoneNumber", "OriginationIdentity", "MessageBody", "MediaUrls",
    "ConfigurationSetName", "MaxPrice", "TimeToLive", "Context", "DryRun",
    "ProtectConfigurationId", "MessageFeedbackEnabled", "RequestId", "CampaignId", "NotAfter",
    "Channel",
]  # fmt: skip
API = ORDER[:11]
EXTENSIONS = {
    "jpg", "jpeg", "png", "gif", "tif", "tiff", "3gp", "3g2", "amr", "mp4",
    "m4a", "mp3", "ogg", "oga", "mov", "webm", "ics", "vcf", "pdf",
}  # fmt: skip
MOBILE = phonenumbers.PhoneNumberType.MOBILE
ALNUM = string.ascii_letters + string.digits
DIGITS = string.digits


def is_text(value: object, low: int, high: int, alphabet: str | None = None) -> bool:
    if type(value) is not str or not low <= len(value) <= high:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return alphabet is None or all(c in alphabet for c in value)


def phone_ok(value: object) -> bool:
    if not is_text(value, 3, 16) or not isinstance(value, str) or value[0] != "+":
        return False
    if not all(c in DIGITS for c in value[1:]):
        return False
    number = phonenumbers.parse(value, None) if len(value) > 2 else None
    return (
        number is not None
        and phonenumbers.is_valid_number(number)
        and phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == value
    )


def phone_ok_safe(value: object) -> bool:
    try:
        return phone_ok(value)
    except phonenumbers.NumberParseException:
        return False


def body_ok(value: object) -> bool:
    return is_text(value, 1, 1600) and isinstance(value, str) and not value.isspace()


def media_ok(value: object) -> bool:
    if type(value) is not list or len(value) != 1:
        return False
    url = value[0]
    if not is_text(url, 1, 2048) or not isinstance(url, str) or not url.startswith("s3://"):
        return False
    bucket, slash, key = url[len("s3://") :].partition("/")
    if not slash or not is_text(bucket, 3, 63, string.ascii_lowercase + DIGITS + ".-"):
        return False
    stem, dot, ext = key.rpartition(".")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return False
    return bool(dot and stem) and ext.isascii() and ext.lower() in EXTENSIONS


def price_ok(value: object) -> bool:
    if type(value) is not str:
        return False
    whole, dot, fraction = value.partition(".")
    return (
        bool(dot)
        and len(whole) <= 2
        and 1 <= len(fraction) <= 5
        and all(c in DIGITS for c in whole + fraction)
    )


def context_ok(value: object) -> bool:
    if type(value) is not dict or len(value) > 4 or "sms-worker:RequestId" in value:
        return False
    return all(
        is_text(k, 1, 100) and not k.isspace() and is_text(v, 1, 800) and v == v.strip()
        for k, v in value.items()
    )


DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def not_after_ok(value: object) -> bool:
    if type(value) is not str or DATE_TIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


CHECKS: dict[str, Any] = {
    "DestinationPhoneNumber": phone_ok_safe,
    "OriginationIdentity": lambda v: is_text(v, 1, 256, ALNUM + "_:/+-"),
    "MessageBody": body_ok,
    "MediaUrls": media_ok,
    "ConfigurationSetName": lambda v: is_text(v, 1, 256, ALNUM + "_:/-"),
    "MaxPrice": price_ok,
    "TimeToLive": lambda v: type(v) is int and 5 <= v <= 259200,
    "Context": context_ok,
    "DryRun": lambda v: type(v) is bool,
    "ProtectConfigurationId": lambda v: is_text(v, 1, 256, ALNUM + "_:/-"),
    "MessageFeedbackEnabled": lambda v: type(v) is bool,
    "RequestId": lambda v: is_text(v, 1, 128, ALNUM + "_.:-"),
    "CampaignId": lambda v: is_text(v, 1, 128, ALNUM + "_.:-"),
    "NotAfter": not_after_ok,
    "Channel": lambda v: v == "MMS",  # the only channel so far; absent means MMS
}


def invalid_keys(data: dict[str, Any]) -> list[str]:
    """The keys that break the contract, in reporting order: unknown keys by name first."""
    if "Channel" in data and not CHECKS["Channel"](data["Channel"]):
        return ["Channel"]  # the channel decides which keys and rules apply: nothing else
    unknown = sorted(key for key in data if key not in CHECKS)
    bad = [
        key
        for key in ORDER
        if (key in data and not CHECKS[key](data[key]))
        or (key not in data and key in ("DestinationPhoneNumber", "OriginationIdentity"))
    ]
    if not unknown and not bad and "MessageBody" not in data and "MediaUrls" not in data:
        bad = ["MessageBody"]
    return unknown + bad


# --- strategies -----------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
finite_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)  # fmt: skip
wrong_types = (
    st.none()
    | st.booleans()
    | st.integers(-10, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([5.0, 60.0, [], {}, ["x"], {"a": "b"}, "true", "60"])
)
surrogates = st.sampled_from(["\ud800", "ok\udfff", "\udc00x"])
spaces = st.sampled_from(
    [" ", "\t", "\n", "\u3000", "\u00a0", "\x1c", "\u2028", "\ufeff", "\u200b"]
)


def mixed(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    """Mostly valid values (7 to 1), so that whole bodies are often valid.

    (``st.one_of`` flattens nested alternatives and picks among all of them, so the weights
    are set with an explicit draw instead.)
    """
    bad = st.one_of(invalid, wrong_types, surrogates)
    return st.sampled_from(range(8)).flatmap(lambda pick: bad if pick == 7 else valid)


def edge_text(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, b, c: a + b + c, st.sampled_from(["", " ", "\n"]), core,
                     st.sampled_from(["", " ", "\n", "\t"]))  # fmt: skip


E164 = phonenumbers.PhoneNumberFormat.E164
VALID_PHONES = ["+14155552671", "+447911123456", "+12065550100", "+33612345678"] + [
    phonenumbers.format_number(number, E164)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    if (number := phonenumbers.example_number_for_type(region, MOBILE)) is not None
]
phones = mixed(
    st.sampled_from(VALID_PHONES),
    st.sampled_from(["+4407911123456", "14155552671", "+1 4155552671", "+12345", "+1", "+"])
    | st.from_regex(r"\+[0-9]{0,17}", fullmatch=True)
    | edge_text(st.sampled_from(VALID_PHONES))
    | st.text(max_size=16),
)
identities = mixed(
    st.from_regex(r"[A-Za-z0-9_:/+-]{1,40}", fullmatch=True) | st.sampled_from(["i" * 256]),
    st.sampled_from(["", "i" * 257, "pool.abc", "pool abc", "é"]) | st.text(max_size=8),
)
bodies = mixed(
    st.text(min_size=1, max_size=30).filter(lambda s: not s.isspace())
    | st.sampled_from(["b" * 1600, " x "]),
    st.sampled_from(["", "b" * 1601]) | st.text(spaces, min_size=1, max_size=4) | spaces,
)
media_url = st.builds(
    lambda scheme, bucket, key, ext: f"{scheme}{bucket}/{key}{ext}",
    st.sampled_from(["s3://", "s3://", "s3://", "https://", "S3://", "s3:/"]),
    st.from_regex(r"[a-z0-9.-]{1,65}", fullmatch=True) | st.text(max_size=6),
    st.text(max_size=10) | st.sampled_from(["a/b", "", "x\n", "dir/."]),
    st.sampled_from(
        [f".{e}" for e in sorted(EXTENSIONS)]
        + [f".{e.upper()}" for e in sorted(EXTENSIONS)]
        + [".Jpeg", ".exe", ".jpgx", "", ".", ".txt", ".jpg\n", ".K"]
    ),
)
good_media_url = st.builds(
    lambda bucket, stem, ext, upper: f"s3://{bucket}/{stem}.{ext.upper() if upper else ext}",
    st.from_regex(r"[a-z0-9.-]{3,63}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f"), min_size=1, max_size=12),
    st.sampled_from(sorted(EXTENSIONS)),
    st.booleans(),
)
media = mixed(
    st.lists(good_media_url, min_size=1, max_size=1),
    st.lists(media_url, min_size=0, max_size=2) | st.just(["s3://bucket/" + "k" * 2033 + ".pdf"]),
)
names = mixed(
    st.from_regex(r"[A-Za-z0-9_:/-]{1,40}", fullmatch=True) | st.just("n" * 256),
    st.sampled_from(["", "n" * 257, "a+b", "a.b", "a b"]) | st.text(max_size=8),
)
prices = mixed(
    st.from_regex(r"[0-9]{0,2}\.[0-9]{1,5}", fullmatch=True),
    st.from_regex(r"-?[0-9]{0,3}[.,]?[0-9]{0,6}\n?", fullmatch=True) | st.text(max_size=6),
)
ttls = mixed(
    st.integers(5, 259200) | st.sampled_from([5, 259200]),
    st.integers(-10, 300000) | st.sampled_from([4, 259201, 10**30, True, False, "5"]),
)
context_keys = st.text(max_size=6) | st.sampled_from(
    ["k" * 100, "k" * 101, "", " ", " a", "sms-worker:RequestId"]
)
context_values = st.text(max_size=6) | st.sampled_from(["v" * 800, "v" * 801, " v", "v ", "a b"])
contexts = mixed(
    st.dictionaries(
        st.text(min_size=1, max_size=6).filter(lambda s: not s.isspace()),
        st.text(min_size=1, max_size=6).filter(lambda s: s == s.strip()),
        max_size=4,
    ),
    st.dictionaries(context_keys, context_values | wrong_types, max_size=7),
)
flags = mixed(st.booleans(), st.sampled_from([0, 1, "true", "false"]))
tokens = mixed(
    st.from_regex(r"[A-Za-z0-9_.:-]{1,30}", fullmatch=True) | st.just("t" * 128),
    st.sampled_from(["", "t" * 129, "a/b", "a b"]) | st.text(max_size=8),
)
date_times = st.builds(
    lambda date, time, fraction, offset: f"{date}T{time}{fraction}{offset}",
    st.sampled_from(["2030-06-15", "2030-02-30", "0001-01-01", "9999-12-31", "2030-6-15"]),
    st.sampled_from(["12:00:00", "00:00:00", "23:59:59", "24:00:00", "12:00", "12:60:00"]),
    st.sampled_from(["", ".5", ".123456789", ".1234567890", "."]),
    st.sampled_from(["Z", "+02:00", "-05:30", "+23:59", "-23:59", "+24:00", "", "z", "+0200"]),
)
not_afters = mixed(
    st.sampled_from(["2030-06-15T12:00:00Z", "2030-06-15T12:00:00.5+02:00"]) | date_times,
    date_times | edge_text(date_times) | st.text(max_size=10),
)
unknown_keys = st.text(max_size=12).filter(lambda key: key not in CHECKS)

STRATEGIES: dict[str, Any] = {
    "DestinationPhoneNumber": phones,
    "OriginationIdentity": identities,
    "MessageBody": bodies,
    "MediaUrls": media,
    "ConfigurationSetName": names,
    "MaxPrice": prices,
    "TimeToLive": ttls,
    "Context": contexts,
    "DryRun": flags,
    "ProtectConfigurationId": names,
    "MessageFeedbackEnabled": flags,
    "RequestId": tokens,
    "CampaignId": tokens,
    "NotAfter": not_afters,
    "Channel": mixed(st.just("MMS"), st.sampled_from(["VOICE", "mms", "", 1, None, ["MMS"]])),
}


@st.composite
def contract_bodies(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in ORDER:
        required = key in ("DestinationPhoneNumber", "OriginationIdentity")
        presence = draw(st.integers(0, 19))
        if presence < (19 if required else 8):
            data[key] = draw(STRATEGIES[key])
    if draw(st.integers(0, 9)) == 0:
        data[draw(unknown_keys)] = draw(finite_json_values)
    return data


# Text every message may hold whatever the body: a value found in it proves nothing.
FIXED_TEXT = "\n".join(RULES.values()) + "".join(
    [BODY_RULE, NO_CONTENT, "is not a SendMediaMessage parameter nor an envelope key"]
)

# --- properties -----------------------------------------------------------------------------


def check_result(result: ParsedRequest | InvalidRequest) -> None:
    assert isinstance(result, ParsedRequest | InvalidRequest)
    if isinstance(result, InvalidRequest):
        assert result.message
        assert len(result.field) <= 100


@FAST
@given(json_values)
def test_any_json_value_never_raises(value: Any) -> None:
    check_result(parse_request(json.dumps(value), sqs_message_id=SQS_ID))


@FAST
@given(st.dictionaries(st.sampled_from(ORDER) | st.text(max_size=8), json_values, max_size=6))
def test_any_object_with_contract_keys_never_raises(value: dict[str, Any]) -> None:
    raw = json.dumps(value)
    check_result(parse_request(raw, sqs_message_id=SQS_ID))
    check_result(parse_request(raw.encode("utf-8"), sqs_message_id=SQS_ID))


@FAST
@given(st.text() | st.binary())
def test_any_text_or_bytes_never_raises(raw: str | bytes) -> None:
    check_result(parse_request(raw, sqs_message_id=SQS_ID))


@FAST
@given(st.binary(max_size=40), st.booleans())
def test_mangled_valid_bodies_never_raise(noise: bytes, at_start: bool) -> None:
    valid = json.dumps({"DestinationPhoneNumber": VALID_PHONES[0], "MessageBody": "hi"}).encode()
    raw = noise + valid if at_start else valid[: len(noise)] + noise
    check_result(parse_request(raw, sqs_message_id=SQS_ID))


@settings(FAST, max_examples=600)
@given(contract_bodies())
def test_parser_agrees_with_the_independent_checker(data: dict[str, Any]) -> None:
    result = parse_request(json.dumps(data), sqs_message_id=SQS_ID)
    bad = invalid_keys(data)
    request_id = data["RequestId"] if CHECKS["RequestId"](data.get("RequestId")) else SQS_ID
    event("accepted" if not bad else f"rejected: {bad[0] if bad[0] in CHECKS else 'unknown'}")
    if not bad:
        assert isinstance(result, ParsedRequest), result
        assert result.request_id == request_id
        assert result.payload.api_params() == {k: v for k, v in data.items() if k in API}
        return
    assert isinstance(result, InvalidRequest), (bad, result)
    assert result.field == reportable_key(bad[0])
    assert result.request_id == request_id

    def kept(key: str) -> str | None:
        return data[key] if key in data and CHECKS[key](data[key]) else None

    assert result.destination == kept("DestinationPhoneNumber")
    assert result.identity == kept("OriginationIdentity")
    assert result.campaign_id == kept("CampaignId")
    for key in ("DestinationPhoneNumber", "MessageBody"):
        value = data.get(key)
        # An unknown key's name may be quoted (key names are not personal data); a value that
        # happens to be spelled like one of the body's keys cannot be told apart from it.
        named_keys = " ".join(k for k in data if isinstance(k, str))
        if (
            isinstance(value, str)
            and len(value) >= 6
            and value not in FIXED_TEXT
            and value not in named_keys
        ):
            assert value not in result.message  # never echo personal data


# --- no request text in ErrorReason or ErrorMessage -----------------------------------------

# Text a producer may send that is personal data: numbers (with or without '+'), message
# bodies, Context keys and values. Each is drawn so that it is long enough to be recognised.
personal_phones = st.sampled_from(VALID_PHONES) | st.from_regex(
    r"\+?[1-9][0-9]{6,14}", fullmatch=True
)
personal_texts = st.text(min_size=6, max_size=24).filter(lambda s: s.strip() == s and s != "")
LEAK_KINDS = [
    "unknown key", "bad phone", "bad body", "bad context", "duplicate", "nested duplicate",
    "no content",
]  # fmt: skip
# Text any message or ErrorReason may hold whatever the body (our rules and key names).
OUR_TEXT = FIXED_TEXT + "\n" + "\n".join(ORDER) + "\nbody\nUNNAMED_KEY\nnot shown"


def _json_object(pairs: list[tuple[str, Any]]) -> str:
    """A JSON object's text from pairs, keys possibly repeated (json.dumps cannot)."""
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"


@st.composite
def leaky_bodies(draw: st.DrawFn) -> tuple[str, list[str], str | None]:
    """An invalid body full of personal data, the personal texts in it, and the unknown
    key's name (None when there is none)."""
    phone = draw(personal_phones)
    body_text = draw(personal_texts)
    context_key, context_value = draw(personal_texts), draw(personal_texts)
    kind = draw(st.sampled_from(LEAK_KINDS))
    pairs: list[tuple[str, Any]] = [
        ("DestinationPhoneNumber", phone),
        ("OriginationIdentity", draw(st.sampled_from([phone, "pool-1", "+18005550100"]))),
        ("MessageBody", body_text),
        ("Context", {context_key: context_value}),
    ]
    unknown: str | None = None
    if kind == "unknown key":
        unknown = draw(
            st.sampled_from([phone, phone.lstrip("+"), body_text, context_key, context_value])
            | st.sampled_from([f"Ref{phone.lstrip('+')}", f"{body_text} {phone}", "MesageBody"])
            | st.text(max_size=12)
        )
        if unknown in ORDER:
            unknown = unknown + "1"
        pairs.append((unknown, draw(st.sampled_from([phone, body_text, context_value]))))
    elif kind == "bad phone":
        bad = draw(st.sampled_from([phone + "0" * 6, phone.lstrip("+"), f" {phone}", phone + "x"]))
        pairs[0] = ("DestinationPhoneNumber", bad)
    elif kind == "bad body":
        pairs[2] = ("MessageBody", draw(st.sampled_from([[body_text], {body_text: phone},
                                                          body_text * 300, 7])))  # fmt: skip
    elif kind == "bad context":
        pairs[3] = ("Context", draw(st.sampled_from([
            {context_key: f" {context_value}"}, {context_key: context_value * 200},
            {context_key: [context_value]}, {f"{k}{context_key}": phone for k in "abcdef"},
            {context_key: {phone: context_value}},
        ])))  # fmt: skip
    elif kind == "duplicate":
        key = draw(st.sampled_from(["MessageBody", "Context", "DestinationPhoneNumber"]))
        pairs.append((key, phone))
    elif kind == "nested duplicate":
        inner = _json_object([(context_key, context_value), (context_key, phone)])
        raw = _json_object(pairs[:3]) [:-1] + f', "Context": {inner}' + "}"  # fmt: skip
        return raw, [phone, body_text, context_key, context_value], None
    else:  # no content
        del pairs[2]
    personal = [phone, body_text, context_key, context_value]
    return _json_object(pairs), personal, unknown


@settings(FAST, max_examples=500)
@given(leaky_bodies())
def test_no_request_text_reaches_error_reason_or_message(
    case: tuple[str, list[str], str | None],
) -> None:
    """ErrorReason (``field``) and ErrorMessage (``message``) are built from our own text:
    no phone number, body or Context key or value of the request ever appears in them. The
    one exception is an unknown key's name when ``reportable_key`` shows it (letters and '_'
    only, no digit): a producer who used a text of that shape as a key name sees it named."""
    raw, personal, unknown = case
    result = parse_request(raw, sqs_message_id=SQS_ID)
    assert isinstance(result, InvalidRequest), raw
    shown = reportable_key(unknown) if unknown is not None else "UNNAMED_KEY"
    assert result.field in {*ORDER, "body", "UNNAMED_KEY", shown}
    allowed = OUR_TEXT + "\n" + shown
    event(f"ErrorReason {'named' if result.field == shown != 'UNNAMED_KEY' else result.field}")
    for text in (result.field, result.message):
        for value in personal:
            if value in allowed:
                continue  # spelled like our own words: finding it proves nothing
            assert value not in text, (value, text)
            digits = re.sub(r"[^0-9]", "", value)
            if len(digits) >= 7:
                assert digits[-7:] not in text, (value, text)
