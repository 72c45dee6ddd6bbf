"""Masking of phone numbers for logs, metrics and errors: personal data never appears whole.

The rule, the same wherever a number is masked (:func:`mask_phone`, :func:`mask_text`,
:func:`mask_identity`): a phone number keeps its country calling code (found with
``phonenumbers``) and its last two digits, every other digit is hidden behind a mask of fixed
length, so the mask does not even say how many digits it hides::

    +12065550100   -> +1***00
    +447700900123  -> +44***23

That is enough to tell countries and most numbers apart in a log, and not enough to call one.

- A number whose country code ``phonenumbers`` cannot find keeps ``+`` and its last two
  digits only (``+99912345678`` -> ``+***78``); so does one so short that keeping its country
  code would hide fewer than :data:`MIN_HIDDEN` digits.
- A string with fewer than :data:`MIN_DIGITS` digits keeps nothing but the mask (``+***``).
- A digit run without the ``+`` (``12065550100``, ``(206) 555-0100``) carries no sure country
  code: it keeps its last two digits (``***00``).
"""

from __future__ import annotations

import re

import phonenumbers

#: What stands for the hidden digits, however many there are.
MASK = "***"
#: Fewer digits than this and nothing of the number is shown.
MIN_DIGITS = 6
#: The country code is shown only when at least this many digits stay hidden.
MIN_HIDDEN = 4

_PHONE_LIKE = re.compile(r"\+[0-9]")
_DIGIT_RUN_IDENTITY = re.compile(r"[0-9]{7,15}")
# Separators found inside a written phone number: a space, a dot, a hyphen, parentheses or a
# slash (``+1 (206) 555-0100``, ``206.555.0100``), at most two in a row.
_SEP = r"[ \t().\-/]{0,2}"
# Anything shaped like an E.164 number, wherever it appears in a text: '+', then 6..15
# digits, possibly split by separators. The '+' makes it a phone number whatever follows.
_E164_IN_TEXT = re.compile(rf"\+\(?[0-9](?:{_SEP}[0-9]){{5,14}}")
# Phone-number-shaped runs without the '+': 7..15 digits, possibly split by separators, not
# glued to a word (so ``order12345678`` and hex ids are left alone).
_DIGITS_IN_TEXT = re.compile(rf"(?<![\w+])\(?[0-9](?:{_SEP}[0-9]){{6,14}}(?![\w])")


def _digits(text: str) -> str:
    return "".join(c for c in text if "0" <= c <= "9")


# Every assigned country calling code (1 to 3 digits; no code is a prefix of another).
_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _country_code(digits: str) -> str | None:
    """The country calling code ``digits`` (an E.164 number without '+') starts with: a
    lookup in phonenumbers' table (parsing the whole number cost 20 us a log line)."""
    return next((digits[:n] for n in (1, 2, 3) if digits[:n] in _COUNTRY_CODES), None)


def mask_phone(number: str) -> str:
    """``+12065550100`` -> ``+1***00``: the country code and the last two digits only.

    Separators are ignored (``+1 206-555-0100`` masks the same). A number whose country code
    cannot be found keeps ``+`` and its last two digits (``+***00``); one with fewer than six
    digits shows nothing (``+***``, or ``***`` for a string without digits).
    """
    digits = _digits(number)
    if len(digits) < MIN_DIGITS:
        return "+" + MASK if digits else MASK
    code = _country_code(digits) or ""
    if len(digits) - len(code) - 2 < MIN_HIDDEN:
        code = ""
    return f"+{code}{MASK}{digits[-2:]}"


def mask_bare(run: str) -> str:
    """A digit run written without '+' (``206-555-0100``): ``***00``, the last two digits."""
    digits = _digits(run)
    return MASK + digits[-2:] if len(digits) >= MIN_DIGITS else MASK


def mask_identity(identity: str) -> str:
    """Mask an origination identity when it is a phone number, by the rule of
    :func:`mask_phone`: ``+`` and a digit first (``+18005550100`` -> ``+1***00``), or only
    7..15 digits, a number given without its ``+`` (``18005550100`` -> ``***00``).

    Phone number ids and ARNs, pool ids and ARNs and sender ids are not personal data and
    are returned unchanged. A rate-limit key's channel suffix (``+18005550100/SMS``) is kept
    after the masked identity (``+1***00/SMS``).
    """
    base, slash, channel = identity.rpartition("/")
    if slash and channel in ("SMS", "MMS") and base:
        return f"{mask_identity(base)}/{channel}"
    if _PHONE_LIKE.match(identity):
        return mask_phone(identity)
    if _DIGIT_RUN_IDENTITY.fullmatch(identity):
        return mask_bare(identity)
    return identity


def mask_text(text: str, *, bare_digits: bool = False) -> str:
    """Mask every phone number in ``text`` by the rule of :func:`mask_phone`.

    Always: ``+`` and 6..15 digits, possibly split by spaces, dots, hyphens, slashes or
    parentheses (``call +1 (206) 555-0100`` -> ``call +1***00``). With ``bare_digits``, also
    runs of 7..15 digits without the ``+`` and not glued to a word (``206-555-0100`` ->
    ``***00``): use it for text from a third party, such as a provider's error message, which
    may write the destination that way. It is off by default because our own texts carry
    digit runs that are not personal data and must stay readable (request ids such as
    ``r-00000001``, account ids in ARNs, counters).
    """
    text = _E164_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
    if bare_digits:
        text = _DIGITS_IN_TEXT.sub(lambda m: mask_bare(m.group(0)), text)
    return text
