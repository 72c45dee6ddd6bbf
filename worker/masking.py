"""Masking of phone numbers for logs and metrics: personal data never appears whole."""

from __future__ import annotations

import re

_MASK = "***"
_SHORT = 9
_PHONE_LIKE = re.compile(r"\+[0-9]")
# Anything shaped like an E.164 number, wherever it appears in a text.
_E164_IN_TEXT = re.compile(r"\+\d{6,15}")


def mask_phone(number: str) -> str:
    """``+12065550100`` -> ``+1206***0100``; 9 characters or fewer keep only the first 3."""
    if len(number) <= _SHORT:
        return number[:3] + _MASK
    return number[:5] + _MASK + number[-4:]


def mask_identity(identity: str) -> str:
    """Mask an origination identity when it is a phone number ('+' and a digit first).

    Phone number ids and ARNs, pool ids and ARNs and sender ids are not personal data and
    are returned unchanged.
    """
    if _PHONE_LIKE.match(identity):
        return mask_phone(identity)
    return identity


def mask_text(text: str) -> str:
    """Mask every phone-number-shaped run (``+`` and 6..15 digits) in ``text``."""
    return _E164_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
