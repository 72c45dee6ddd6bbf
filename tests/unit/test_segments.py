"""The SMS segment counter: known cases, then properties against a part-by-part encoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.model import segments
from worker.model.segments import GSM_BASIC, GSM_EXTENSION, count, parts

BASIC = "".join(sorted(GSM_BASIC))
EXTENSION = "".join(sorted(GSM_EXTENSION))


@pytest.mark.parametrize(
    ("text", "encoding", "units", "expected"),
    [
        ("Hello", "GSM", 5, 1),
        ("x" * 160, "GSM", 160, 1),
        ("x" * 161, "GSM", 161, 2),
        ("x" * 306, "GSM", 306, 2),  # 153 * 2
        ("x" * 307, "GSM", 307, 3),
        ("x" * 153 * 7, "GSM", 1071, 7),
        ("x" * (153 * 7 + 1), "GSM", 1072, 8),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", "GSM", 42, 1),  # the basic table
        ("€", "GSM", 2, 1),
        ("{", "GSM", 2, 1),
        ("€" * 80, "GSM", 160, 1),
        ("€" * 81, "GSM", 162, 2),
        ("x" * 159 + "€", "GSM", 161, 2),
        # 152 septets then '€' (2): it does not fit in part 1's 153, so it starts part 2.
        ("x" * 152 + "€" + "x" * 152, "GSM", 306, 3),
        ("[]{}|~^\\\f", "GSM", 18, 1),
        ("é" * 160, "GSM", 160, 1),
        ("á", "UCS-2", 1, 1),  # not in GSM 03.38 (é is, á is not)
        ("ç", "UCS-2", 1, 1),  # only the capital Ç is
        ("😀", "UCS-2", 2, 1),  # a surrogate pair: 2 code units
        ("Привет" * 11 + "ab", "UCS-2", 68, 1),
        ("я" * 70, "UCS-2", 70, 1),
        ("я" * 71, "UCS-2", 71, 2),
        ("я" * 134, "UCS-2", 134, 2),  # 67 * 2
        ("я" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),
        ("😀" * 36, "UCS-2", 72, 2),
        # 66 units then a pair (2): the pair is never split, so it starts part 2.
        ("я" * 66 + "😀" + "я" * 66, "UCS-2", 134, 3),
        ("Hello мир 你好", "UCS-2", 12, 1),  # mixed scripts: the whole body is UCS-2
        ("Total: 5€ — thanks", "UCS-2", 18, 1),  # the em dash is not GSM
        ("", "GSM", 0, 1),
    ],
)
def test_known_cases(text: str, encoding: str, units: int, expected: int) -> None:
    counted = count(text)
    assert (counted.encoding, counted.units, counted.parts) == (encoding, units, expected)
    assert parts(text) == expected


def encode_parts(text: str) -> list[list[str]]:
    """An independent encoder: lay characters into parts, the way a phone would."""
    gsm = all(c in GSM_BASIC or c in GSM_EXTENSION for c in text)

    def width(c: str) -> int:
        if gsm:
            return 2 if c in GSM_EXTENSION else 1
        return len(c.encode("utf-16-le")) // 2

    total = sum(width(c) for c in text)
    if total <= (160 if gsm else 70):
        return [list(text)]
    size = 153 if gsm else 67
    out: list[list[str]] = [[]]
    used = 0
    for c in text:
        if used + width(c) > size:
            out.append([])
            used = 0
        out[-1].append(c)
        used += width(c)
    return out


gsm_text = st.text(alphabet=st.sampled_from(BASIC + EXTENSION), max_size=1600)
any_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(BASIC + "😀€"),
    max_size=1600,
)


@given(gsm_text | any_text)
def test_parts_match_an_independent_encoder(text: str) -> None:
    assert parts(text) == len(encode_parts(text))


@given(gsm_text)
def test_gsm_septets_are_bounded_by_the_part_sizes(text: str) -> None:
    counted = count(text)
    assert counted.encoding == "GSM"
    if counted.units <= 160:
        assert counted.parts == 1
    else:
        # Never fewer parts than the septets need, and at most one more per escape pair.
        assert -(-counted.units // 153) <= counted.parts <= -(-counted.units // 152)


@given(any_text)
def test_a_non_gsm_character_makes_the_body_ucs2(text: str) -> None:
    counted = count(text)
    if not segments.is_gsm(text):
        assert counted.encoding == "UCS-2"
        assert counted.units == len(text.encode("utf-16-le")) // 2
        assert counted.parts >= -(-counted.units // 67) if counted.units > 70 else True


@given(st.text(max_size=400), st.text(max_size=400))
def test_more_text_never_costs_fewer_parts_in_the_same_encoding(a: str, b: str) -> None:
    if segments.is_gsm(a) == segments.is_gsm(a + b):
        assert parts(a + b) >= parts(a)
