"""Human-readable statements of the contract's rules and of what was wrong with a body.

Messages name keys and JSON types but never echo a value: a value may be a phone number or
a message body, which is personal data and must not reach logs or the status table. Nor do
they echo a key the contract does not know unless it is shaped like a parameter name (see
:func:`reportable_key`): a key is the producer's text too. Every message here, and every
``InvalidRequest.field`` (the status table's ``ErrorReason``), is built from our own text:
rule sentences, contract key names, JSON type names and pydantic's error *types* (never its
``input`` or its ``msg``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

from worker.model import rules

_EXTENSIONS = ", ".join(rules.MMS_EXTENSIONS)

#: One sentence per contract key: what a valid value is.
RULES: Mapping[str, str] = {
    "DestinationPhoneNumber": (
        "DestinationPhoneNumber must be E.164 ('+' then 2..15 digits, nothing else) "
        "and a valid phone number"
    ),
    "OriginationIdentity": (
        "OriginationIdentity must be 1..256 characters of A-Z a-z 0-9 _ : / + - "
        "(a phone number, phone number id or ARN, sender id, or pool id or ARN)"
    ),
    "MessageBody": (
        f"MessageBody must be a string of 1..{rules.MESSAGE_BODY_MAX} characters "
        "that is not only white space"
    ),
    "MediaUrls": (
        "MediaUrls must be a list of exactly 1 string 's3://BUCKET/KEY' of at most "
        f"{rules.MEDIA_URL_MAX} characters, BUCKET being 3..63 characters of a-z 0-9 . - and "
        f"KEY ending in one of the MMS file extensions {_EXTENSIONS} (any case)"
    ),
    "ConfigurationSetName": (
        "ConfigurationSetName must be 1..256 characters of A-Z a-z 0-9 _ : / -"
    ),
    "MaxPrice": ("MaxPrice must be a string of 0..2 digits, '.', then 1..5 digits, such as '0.05'"),
    "TimeToLive": (
        f"TimeToLive must be a JSON integer of seconds from {rules.TTL_MIN} to {rules.TTL_MAX}"
    ),
    "Context": (
        f"Context must be an object of at most {rules.CONTEXT_MAX_ENTRIES} string entries, "
        f"each key 1..{rules.CONTEXT_KEY_MAX} characters and not only white space, each value "
        f"1..{rules.CONTEXT_VALUE_MAX} characters without leading or trailing white space, "
        f"and no key {rules.RESERVED_CONTEXT_KEY!r} (the worker adds that one itself to name "
        "the request in delivery events)"
    ),
    "DryRun": "DryRun must be true or false",
    "ProtectConfigurationId": (
        "ProtectConfigurationId must be 1..256 characters of A-Z a-z 0-9 _ : / -"
    ),
    "MessageFeedbackEnabled": "MessageFeedbackEnabled must be true or false",
    "RequestId": (
        "RequestId must be 1..128 characters of A-Z a-z 0-9 _ . : - "
        "(omit it to use the SQS message id)"
    ),
    "CampaignId": "CampaignId must be 1..128 characters of A-Z a-z 0-9 _ . : -",
    "NotAfter": (
        "NotAfter must be an ISO-8601 date-time with seconds and a UTC offset, "
        "such as 2026-01-01T00:00:00Z or 2026-01-01T02:00:00+02:00"
    ),
    "Channel": (
        'Channel must be "MMS" (sent with SendMediaMessage; the default when the key is '
        'absent) or "SMS" (sent with SendTextMessage)'
    ),
    "MessageType": (f"MessageType must be one of {', '.join(rules.MESSAGE_TYPES)} (SMS only)"),
    "Keyword": (
        f"Keyword must be 1..{rules.KEYWORD_MAX} characters, spaces allowed but no other "
        "white space (SMS only)"
    ),
    "DestinationCountryParameters": (
        "DestinationCountryParameters must be an object of at most "
        f"{rules.COUNTRY_PARAMETERS_MAX_ENTRIES} entries, keys among "
        f"{', '.join(rules.COUNTRY_PARAMETER_KEYS)}, each value 1.."
        f"{rules.COUNTRY_PARAMETER_VALUE_MAX} characters without white space (SMS only)"
    ),
}

BODY_RULE = (
    "The SQS message body must be a UTF-8 JSON object whose keys are SendMediaMessage "
    'parameters (or SendTextMessage ones with "Channel": "SMS") or the envelope keys '
    "RequestId, CampaignId, NotAfter and Channel"
)
NO_CONTENT = "A request needs MessageBody or MediaUrls (or both); got neither"
UNEXPECTED = "The body could not be checked because of an internal error; report this"

KEY_NAME_MAX = 100
#: What ErrorReason says for an unknown key whose name is not shown (see ``reportable_key``).
UNNAMED_KEY = "UNNAMED_KEY"
# The shape of a parameter name: ASCII letters, words possibly joined by '_' (MessageBody,
# messageBody, message_body), at most 64 characters, no digit at all. A producer's key not
# shaped so (a phone number, an account or order number, an e-mail address, a person's name
# with a space, a sentence of a message body) may be personal data: it is never written to
# the status table or a log, not even in part.
_PLAIN_KEY = re.compile(r"[A-Za-z]+(?:_[A-Za-z]+)*")
_PLAIN_KEY_MAX = 64


def reportable_key(key: str) -> str:
    """What ErrorReason may say for ``key``: its name when it is one of the contract's keys
    (those come from our model) or shaped like a parameter name (letters and '_' only, no
    digit, at most 64 characters), else ``UNNAMED_KEY``: a key name is the producer's text,
    and could be personal data."""
    if key in rules.CONTRACT_KEYS:
        return key
    if len(key) <= _PLAIN_KEY_MAX and _PLAIN_KEY.fullmatch(key):
        return key
    return UNNAMED_KEY


def _quoted(key: str) -> str:
    name = reportable_key(key)
    return "A key" if name == UNNAMED_KEY else f"Key '{name}'"


def closest_key(key: str) -> str | None:
    """The contract key ``key`` is most likely a misspelling of, if any (by ``difflib``,
    ignoring case). The answer is always one of our keys, never the producer's text."""
    folded = {name.lower(): name for name in rules.CONTRACT_KEYS}
    match = difflib.get_close_matches(key[:KEY_NAME_MAX].lower(), sorted(folded), 1, 0.6)
    return folded[match[0]] if match else None


def _hint(key: str) -> str:
    match = closest_key(key)
    return f" (did you mean {match}?)" if match else ""


def json_kind(value: object) -> str:
    """The JSON type of a decoded value, with its article (``"a boolean"``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of an unexpected type"


def body_error(got: str) -> str:
    """The body as a whole is unusable."""
    return f"{BODY_RULE}; got {got}"


def unknown_key(key: str, operation: str) -> str:
    """An unknown key: named only when :func:`reportable_key` allows it, with a hint of the
    contract key it most likely misspells (a hint is our text: given either way).
    ``operation`` is the API operation of the body's channel."""
    if key in rules.CONTRACT_KEYS:  # a key of another channel (MediaUrls on an SMS)
        return (
            f"Key '{key}' is not a {operation} parameter: it belongs to another channel; "
            "remove it, or set Channel to the channel whose parameter it is"
        )
    unnamed = (
        " (its name is not shown: it is not shaped like a parameter name)"
        if reportable_key(key) == UNNAMED_KEY
        else ""
    )
    return (
        f"{_quoted(key)} is not a {operation} parameter nor an envelope key{unnamed}"
        f"{_hint(key)}; keys are case-sensitive: remove it or correct its spelling"
    )


def unknown_channel(value: object) -> str:
    """``Channel`` names no channel of the registry (or is not a string): the body cannot be
    checked further, since its channel decides which keys and rules apply."""
    if value is None:
        got = "null (omit the key to leave it unset)"
    elif isinstance(value, str):
        got = "a string that names no channel of this worker"
    else:
        got = json_kind(value)
    return f"{RULES['Channel']}; got {got}"


def duplicate_key(key: str) -> str:
    return f"{_quoted(key)} is given more than once in the body; give each key once"


def nested_duplicate_key(key: str) -> str:
    return f"{_quoted(key)} holds a JSON object with a key given more than once; give each once"


def field_error(field: str, error_type: str, loc: Sequence[int | str], value: object) -> str:
    """What is wrong with one contract key, from one pydantic error, without the value."""
    return f"{RULES[field]}; got {_what_was_given(field, error_type, loc, value)}"


def _what_was_given(field: str, error_type: str, loc: Sequence[int | str], value: object) -> str:
    if error_type == "missing":
        return "no value (the key is missing)"
    if value is None and len(loc) == 1:
        return "null (omit the key to leave it unset)"
    if error_type in ("not_utf8", "string_unicode"):
        return "text with a lone surrogate, which is not valid Unicode"
    part = _part(field, loc)
    if error_type.endswith("_type"):
        return f"{json_kind(value)}{part}"
    if error_type == "reserved_key":
        return f"the reserved key {rules.RESERVED_CONTEXT_KEY!r}, which only the worker sets"
    if field in _MAPS_AND_LISTS and len(loc) == 1 and error_type == "too_long":
        return "too many entries"
    if field == "MediaUrls" and len(loc) == 1 and error_type == "too_short":
        return "an empty list"
    return f"a value that is not{part}" if not part else f"an invalid value{part}"


_MAPS_AND_LISTS = ("MediaUrls", "Context", "DestinationCountryParameters")


def _part(field: str, loc: Sequence[int | str]) -> str:
    """Where inside a list or object field the error is (never naming a Context key)."""
    if len(loc) < 2:
        return ""
    if field in ("Context", "DestinationCountryParameters"):
        return " as a key in it" if len(loc) >= 3 and loc[-1] == "[key]" else " as a value in it"
    return " as an item in it"
