"""Phone numbers are masked by one rule everywhere: the country code and the last two digits."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.masking import MASK, mask_identity, mask_phone, mask_text

FAST = settings(max_examples=300, deadline=None, database=None)
E164 = phonenumbers.PhoneNumberFormat.E164
INTERNATIONAL = phonenumbers.PhoneNumberFormat.INTERNATIONAL
NATIONAL = phonenumbers.PhoneNumberFormat.NATIONAL


def _examples() -> list[phonenumbers.PhoneNumber]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                numbers.append(number)
    return numbers


EXAMPLES = _examples()


def _digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+12065550100", "+1***00"),
        ("+447700900123", "+44***23"),
        ("+353861234567", "+353***67"),
        ("+1 (206) 555-0100", "+1***00"),  # separators do not matter
        ("+99912345678", "+***78"),  # no such country code: '+' and the last two digits
        ("+1234567", "+1***67"),  # four digits hidden: the country code may show
        ("+123456", "+***56"),  # it would leave only three hidden: it does not show
        ("+3531234", "+***34"),  # 353 and 34 would show 5 of 7 digits
        ("+12345", "+***"),  # too short to show anything
        ("+1", "+***"),
        ("", "***"),
        ("no digits", "***"),
    ],
)
def test_mask_phone_keeps_the_country_code_and_the_last_two_digits(
    number: str, masked: str
) -> None:
    assert mask_phone(number) == masked


def test_every_regions_example_numbers_show_only_country_code_and_last_two() -> None:
    assert len(EXAMPLES) > 300
    for number in EXAMPLES:
        e164 = phonenumbers.format_number(number, E164)
        code = str(number.country_code)
        masked = mask_phone(e164)
        hidden = len(e164) - 1 - len(code) - 2
        expected = f"+{code}{MASK}{e164[-2:]}" if hidden >= 4 else f"+{MASK}{e164[-2:]}"
        assert masked == expected, e164
        assert len(_digits(masked)) <= len(code) + 2
        national = str(number.national_number)
        assert national not in masked


def test_the_mask_says_nothing_of_the_number_of_hidden_digits() -> None:
    assert mask_phone("+12065550100") == mask_phone("+1206555010000")[:-2] + "00"
    assert len(mask_phone("+12065550100")) == len(mask_phone("+12065550100123"))


def test_mask_text_masks_every_number_in_text_by_the_same_rule() -> None:
    for number in EXAMPLES:
        e164 = phonenumbers.format_number(number, E164)
        international = phonenumbers.format_number(number, INTERNATIONAL)
        national_number = str(number.national_number)
        for written in (e164, international):
            text = f"Destination {written} is not reachable."
            masked = mask_text(text)
            assert masked == f"Destination {mask_phone(e164)} is not reachable.", written
            assert national_number not in _digits(masked)


def test_mask_text_with_bare_digits_masks_numbers_without_the_plus() -> None:
    for number in EXAMPLES:
        e164 = phonenumbers.format_number(number, E164)
        national = phonenumbers.format_number(number, NATIONAL)
        if len(_digits(national)) < 7 or len(_digits(e164)) > 15:
            continue  # a run this short is not told from a count; longer is not a number
        for written in (e164[1:], national):
            masked = mask_text(f"to {written}: rejected", bare_digits=True)
            assert str(number.national_number) not in _digits(masked), written
            assert masked.startswith("to ") and masked.endswith(": rejected")
            assert MASK in masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("number 12065550100 opted out", "number ***00 opted out"),
        ("call (206) 555-0100 now", "call ***00 now"),
        ("call 206.555.0100 now", "call ***00 now"),
        ("+1 206-555-0100 and 206 555 0100", "+1***00 and ***00"),
        ("short 123456 stays", "short 123456 stays"),  # six digits: a count, not a number
        ("order12345678 stays", "order12345678 stays"),  # glued to a word: an id
        ("id 0123456789abcdef stays", "id 0123456789abcdef stays"),  # hex
    ],
)
def test_bare_digit_runs(text: str, masked: str) -> None:
    assert mask_text(text, bare_digits=True) == masked


@pytest.mark.parametrize(
    "text",
    [
        "r-00000001",
        "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-1",
        "2026-12-01T22:48:05.123456+00:00",
        "took 12345678 ms",
        "pool-0123456789abcdef",
    ],
)
def test_our_own_digit_runs_are_left_alone_by_default(text: str) -> None:
    assert mask_text(text) == text


@FAST
@given(
    st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
    st.text(alphabet="abc XYZ.,;:!?", max_size=20),
    st.text(alphabet="abc XYZ.,;:!?", max_size=20),
    st.sampled_from(["", " ", "-", "."]),
)
def test_no_number_survives_mask_text(number: str, before: str, after: str, sep: str) -> None:
    written = number[:3] + sep + number[3:7] + sep + number[7:]
    for bare in (False, True):
        masked = mask_text(f"{before} {written} {after}", bare_digits=bare)
        shown = _digits(masked)
        assert len(shown) <= 3 + 2  # at most a country code and the last two digits
        assert number[-5:] not in shown


@pytest.mark.parametrize(
    ("identity", "masked"),
    [
        ("+18005550100", "+1***00"),
        ("+1 800 555 0100", "+1***00"),
        ("18005550100", "***00"),  # a phone number given without its '+'
        ("pool-0123456789abcdef", None),
        ("phone-0123456789abcdef", None),
        ("arn:aws:sms-voice:us-east-1:123456789012:pool/pool-1", None),
        ("arn:aws:sms-voice:us-east-1:123456789012:phone-number/phone-abc", None),
        ("MySender", None),
        ("+Sender", None),
        ("123456", None),  # too short for a phone number: a sender id
    ],
)
def test_mask_identity_masks_phone_numbers_only(identity: str, masked: str | None) -> None:
    assert mask_identity(identity) == (identity if masked is None else masked)
