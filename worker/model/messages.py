"""Human-readable statements of the contract's rules and of what was wrong with a body.

Messages name keys and JSON types but never echo a value: a value may be a phone number or
a message body, which is personal data and must not reach logs or the status table.
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
        f"1..{rules.CONTEXT_VALUE_MAX} characters without leading or trailing white space"
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
}

BODY_RULE = (
    "The SQS message body must be a UTF-8 JSON object whose keys are SendMediaMessage "
    "parameters or the envelope keys RequestId, CampaignId and NotAfter"
)
NO_CONTENT = "A request needs MessageBody or MediaUrls (or both); got neither"
UNEXPECTED = "The body could not be checked because of an internal error; report this"

KEY_NAME_MAX = 100
#: What ErrorReason says for a key whose name is not shown (see ``reportable_key``).
UNNAMED_KEY = "UNNAMED_KEY"
# A name shaped like an API parameter: letters, then letters, digits (at most three), '_' or
# '-'. A producer's key that is not shaped so (a phone number, an e-mail address, a person's
# name with a space) may be personal data, and is never written to the table or a log.
_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def reportable_key(key: str) -> str:
    """The key's name when it is one of ours or shaped like a parameter name, else
    ``UNNAMED_KEY``: a key name is the producer's text, and could be personal data."""
    if key in rules.CONTRACT_KEYS:
        return key
    if _PLAIN_KEY.fullmatch(key) and sum(c.isdigit() for c in key) <= 3:
        return key
    return UNNAMED_KEY


def safe_key(key: str) -> str:
    """A key name fit for a message (kept for callers that quote names; see reportable_key)."""
    return reportable_key(key)


def _quoted(key: str) -> str:
    name = reportable_key(key)
    return "A key" if name == UNNAMED_KEY else f"Key '{name}'"


def _closest(key: str) -> str:
    match = difflib.get_close_matches(key, sorted(rules.CONTRACT_KEYS), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


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


def unknown_key(key: str) -> str:
    hint = _closest(key) if reportable_key(key) != UNNAMED_KEY else ""
    unnamed = (
        " (its name is not shown: it is not shaped like a parameter name)"
        if reportable_key(key) == UNNAMED_KEY
        else ""
    )
    return (
        f"{_quoted(key)} is not a SendMediaMessage parameter nor an envelope key{unnamed}"
        f"{hint}; keys are case-sensitive: remove it or correct its spelling"
    )


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
    if field in ("MediaUrls", "Context") and len(loc) == 1 and error_type == "too_long":
        return "too many entries"
    if field == "MediaUrls" and len(loc) == 1 and error_type == "too_short":
        return "an empty list"
    return f"a value that is not{part}" if not part else f"an invalid value{part}"


def _part(field: str, loc: Sequence[int | str]) -> str:
    """Where inside a list or object field the error is (never naming a Context key)."""
    if len(loc) < 2:
        return ""
    if field == "Context":
        return " as a key in it" if len(loc) >= 3 and loc[-1] == "[key]" else " as a value in it"
    return " as an item in it"
