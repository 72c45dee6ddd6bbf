"""How many message parts (segments) an SMS body costs: what the API's throughput counts.

A body whose every character is in the GSM 03.38 default alphabet is sent in 7-bit septets:
160 in one part, 153 per part once split (a part's header takes the rest). A character of
the extension table (``€``, ``{``, ``[``, ...) is an escape plus a septet, so it counts 2, and
the pair is never split across parts. Any other character makes the whole body UCS-2: 70
UTF-16 code units in one part, 67 per part once split; a character outside the Basic
Multilingual Plane (most emoji) is a surrogate pair, 2 code units, never split either.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The GSM 03.38 default alphabet (the escape character itself excluded: it is not text).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The GSM 03.38 extension table: each is sent as escape + septet (2 septets).
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE, GSM_PER_PART = 160, 153
UCS2_SINGLE, UCS2_PER_PART = 70, 67


@dataclass(frozen=True, slots=True)
class Segments:
    """A body's encoding and its length in that encoding's units."""

    encoding: str  # "GSM" (septets) or "UCS-2" (UTF-16 code units)
    units: int
    parts: int


def is_gsm(text: str) -> bool:
    """Every character is in the GSM 03.38 default alphabet or its extension table."""
    return all(c in GSM_BASIC or c in GSM_EXTENSION for c in text)


def _split(widths: list[int], single: int, per_part: int) -> int:
    """Parts for characters of these widths: one part if all fit in ``single``, else parts of
    at most ``per_part`` units filled in order, a character never split between two."""
    if sum(widths) <= single:
        return 1
    parts, used = 1, 0
    for width in widths:
        if used + width > per_part:
            parts, used = parts + 1, 0
        used += width
    return parts


def count(text: str) -> Segments:
    """The encoding, units and parts of ``text`` (an empty text is one part)."""
    if is_gsm(text):
        widths = [2 if c in GSM_EXTENSION else 1 for c in text]
        return Segments("GSM", sum(widths), _split(widths, GSM_SINGLE, GSM_PER_PART))
    widths = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return Segments("UCS-2", sum(widths), _split(widths, UCS2_SINGLE, UCS2_PER_PART))


def parts(text: str) -> int:
    """How many message parts ``text`` is sent in."""
    return count(text).parts
