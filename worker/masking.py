"""Masking of phone numbers for logs, metrics and errors: personal data never appears whole.

A phone number keeps its country calling code and its last two digits, and nothing says how
many digits were hidden: ``+12065550100`` -> ``+1***00``, ``+447700900123`` -> ``+44***23``.
That is enough to tell countries and most numbers apart in a log, and not enough to call one.
"""

from __future__ import annotations

import re

import phonenumbers

_MASK = "***"
_PHONE_LIKE = re.compile(r"\+[0-9]")
# Anything shaped like an E.164 number, wherever it appears in a text.
_E164_IN_TEXT = re.compile(r"\+\d{6,15}")
# Phone-number-shaped runs without the '+': 7..15 digits, optionally split by a space, dot,
# hyphen or parentheses, as providers and carriers write them (used for provider messages).
_DIGITS_IN_TEXT = re.compile(r"(?<![\w+])\(?\d(?:[\s().-]{0,2}\d){6,14}(?!\w)")


def _country_code(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    code = str(parsed.country_code)
    return code if number[1:].startswith(code) else None


def mask_phone(number: str) -> str:
    """``+12065550100`` -> ``+1***00``: the country code and the last two digits only.

    A number whose country code cannot be found keeps only its last two digits (``+***00``);
    one too short to hide anything in shows nothing (``+***``)."""
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) < 6:
        return "+" + _MASK if digits else _MASK
    code = _country_code("+" + digits) or ""
    return f"+{code}{_MASK}{digits[-2:]}"


def mask_identity(identity: str) -> str:
    """Mask an origination identity when it is a phone number ('+' and a digit first).

    Phone number ids and ARNs, pool ids and ARNs and sender ids are not personal data and
    are returned unchanged.
    """
    if _PHONE_LIKE.match(identity):
        return mask_phone(identity)
    return identity


def mask_text(text: str, *, bare_digits: bool = False) -> str:
    """Mask every phone-number-shaped run (``+`` and 6..15 digits) in ``text``; with
    ``bare_digits``, also runs of 7..15 digits without the ``+`` (a provider's message may
    write the destination that way)."""
    text = _E164_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
    if bare_digits:
        text = _DIGITS_IN_TEXT.sub(lambda m: _mask_bare(m.group(0)), text)
    return text


def _mask_bare(run: str) -> str:
    """Digits without a '+' carry no sure country code: keep the last two only."""
    return _MASK + "".join(c for c in run if c.isdigit())[-2:]
