"""The send-request contract's rules as plain data and functions.

The models (:mod:`worker.model.mms`, ...), the error messages (:mod:`worker.model.messages`)
and the JSON Schema (:mod:`worker.model.schema`) all read them from here, so the rules are
stated once. Every pattern is anchored with ``^...$`` and is meant for engines where ``$``
matches only at the very end of the text (pydantic's Rust engine, ECMA-262 as used by JSON
Schema); Python code here uses :func:`re.fullmatch`, never ``re.match`` with ``$``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import phonenumbers

# phonenumbers compiles its metadata patterns through ``re.compile``, whose cache holds 512:
# once the process's other patterns churn it, every validation recompiles a country's
# patterns (about 1 ms a number, measured in a worker). Its own cache keeps each compiled
# pattern (bounded by the metadata, a few thousand).
phonenumbers.enable_pattern_cache()

#: The ``SendMediaMessage`` parameters an MMS body may carry, in contract order.
MMS_API_KEYS: tuple[str, ...] = (
    "DestinationPhoneNumber",
    "OriginationIdentity",
    "MessageBody",
    "MediaUrls",
    "ConfigurationSetName",
    "MaxPrice",
    "TimeToLive",
    "Context",
    "DryRun",
    "ProtectConfigurationId",
    "MessageFeedbackEnabled",
)
#: The ``SendTextMessage`` parameters an SMS body may carry, in contract order.
SMS_API_KEYS: tuple[str, ...] = (
    "DestinationPhoneNumber",
    "OriginationIdentity",
    "MessageBody",
    "MessageType",
    "Keyword",
    "DestinationCountryParameters",
    "ConfigurationSetName",
    "MaxPrice",
    "TimeToLive",
    "Context",
    "DryRun",
    "ProtectConfigurationId",
    "MessageFeedbackEnabled",
)
#: Keys read by the worker itself, whatever the channel, and never sent to the API.
ENVELOPE_KEYS: tuple[str, ...] = ("RequestId", "CampaignId", "NotAfter", "Channel")
#: Every key a body of some channel may carry, in contract order: each channel's parameters
#: (a key two channels share listed once, where it first appears), then the envelope keys.
CONTRACT_KEYS: tuple[str, ...] = tuple(dict.fromkeys(MMS_API_KEYS + SMS_API_KEYS + ENVELOPE_KEYS))

#: File extensions of the media types MMS accepts (compared case-insensitively).
MMS_EXTENSIONS: tuple[str, ...] = (
    "jpg", "jpeg", "png", "gif", "tif", "tiff", "3gp", "3g2", "amr", "mp4",
    "m4a", "mp3", "ogg", "oga", "mov", "webm", "ics", "vcf", "pdf",
)  # fmt: skip

#: SendTextMessage's MessageType values.
MESSAGE_TYPES: tuple[str, ...] = ("TRANSACTIONAL", "PROMOTIONAL")
#: SendTextMessage's DestinationCountryParameters keys (India's DLT registration).
COUNTRY_PARAMETER_KEYS: tuple[str, ...] = ("IN_ENTITY_ID", "IN_TEMPLATE_ID")

MESSAGE_BODY_MAX = 1600
KEYWORD_MAX = 30
COUNTRY_PARAMETERS_MAX_ENTRIES = 10
COUNTRY_PARAMETER_VALUE_MAX = 64
MEDIA_URL_MAX = 2048
TTL_MIN = 5
TTL_MAX = 259_200
#: The API's limit on ``Context`` entries; the worker adds one of its own (below), so a
#: producer may use one fewer (:data:`PRODUCER_CONTEXT_MAX_ENTRIES`).
API_CONTEXT_MAX_ENTRIES = 5
#: The ``Context`` key the worker adds to every send (its value: the RequestId), so that
#: delivery events, which echo ``Context``, name their request. A producer may not set it.
RESERVED_CONTEXT_KEY = "sms-worker:RequestId"
PRODUCER_CONTEXT_MAX_ENTRIES = API_CONTEXT_MAX_ENTRIES - 1
CONTEXT_MAX_ENTRIES = PRODUCER_CONTEXT_MAX_ENTRIES
CONTEXT_KEY_MAX = 100
CONTEXT_VALUE_MAX = 800
NAME_MAX = 256
TOKEN_MAX = 128


def _any_case(word: str) -> str:
    """``"jpg"`` -> ``"[jJ][pP][gG]"``: case-insensitive without flags (ECMA has no ``(?i)``)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


E164_PATTERN = r"^\+[0-9]{2,15}$"
ORIGINATION_IDENTITY_PATTERN = r"^[A-Za-z0-9_:/+-]{1,256}$"
NAME_PATTERN = r"^[A-Za-z0-9_:/-]{1,256}$"
TOKEN_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_PRICE_PATTERN = r"^[0-9]{0,2}\.[0-9]{1,5}$"
#: A Keyword: spaces and visible characters, no other white space (the API model's ``[ \S]+``).
KEYWORD_PATTERN = r"^[ \S]+$"
#: A DestinationCountryParameters value: no white space at all (the API model's ``\S+``).
NO_SPACE_PATTERN = r"^\S+$"
MEDIA_URL_PATTERN = (
    r"^s3://[a-z0-9.-]{3,63}/[^\x00-\x1f\x7f]+\.(?:"
    + "|".join(_any_case(ext) for ext in MMS_EXTENSIONS)
    + r")$"
)
NOT_AFTER_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
#: JSON Schema (ECMA-262) statements of the white-space rules; the model checks them with
#: Python's :meth:`str.isspace`, whose set differs from ECMA's ``\s`` in a few control and
#: format characters.
NOT_BLANK_PATTERN = r"\S"
NO_EDGE_SPACE_PATTERN = r"^\S(?:[\s\S]*\S)?$"

_NOT_AFTER_RE = re.compile(NOT_AFTER_PATTERN)


def is_blank(text: str) -> bool:
    """Empty or only white space."""
    return not text or text.isspace()


def has_edge_space(text: str) -> bool:
    """Starts or ends with white space."""
    return text != text.strip()


def is_utf8_text(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (JSON allows ``"\\ud800"``; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_valid_phone_number(number: str) -> bool:
    """E.164 in its canonical form and a valid number according to ``phonenumbers``.

    Canonical form means ``phonenumbers`` formats it back to the same text, which rules out a
    national trunk prefix after the country code (``+4407911123456``).
    """
    if re.fullmatch(E164_PATTERN, number) is None:
        return False
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    if not phonenumbers.is_valid_number(parsed):
        return False
    canonical = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return canonical == number


def parse_not_after(text: str) -> datetime:
    """Parse a ``NotAfter`` value into an aware UTC datetime; ``ValueError`` if it is not one."""
    if _NOT_AFTER_RE.fullmatch(text) is None:
        raise ValueError("not an ISO-8601 date-time with seconds and a UTC offset")
    parsed = datetime.fromisoformat(text)  # ValueError for impossible dates and times
    if parsed.tzinfo is None:  # pragma: no cover - the pattern requires an offset
        raise ValueError("no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("outside the years 1..9999 once converted to UTC") from None
