"""SMS text encoding and segment counting (3GPP TS 23.038 / TS 23.040).

A text goes out as GSM 7-bit when every character is in the GSM 03.38 default alphabet or
its default extension table, and as UCS-2 otherwise; UTF-16 in practice, since emoji and
other characters outside the BMP travel as surrogate pairs.

One message holds 140 octets of user data: 160 septets or 70 UTF-16 code units. A longer
text is sent as a concatenated message, whose user data header (6 octets) leaves 153 septets
or 67 code units per part. An SMSC never splits an escape pair (extension character) or a
surrogate pair across parts, so a part can carry one unit less than its limit and the part
count is a greedy fill, not ``ceil(units / limit)``.

This runs for every message on the hot path: the tables below are plain literals, and the
common all-ASCII case is decided with ``bytes.translate``, which runs in C without creating
a Python object per character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

__all__ = [
    "GSM7_BASIC_CHARS",
    "GSM7_CHARS",
    "GSM7_EXTENSION_CHARS",
    "GSM7_PART_LIMIT",
    "GSM7_SINGLE_LIMIT",
    "UCS2_PART_LIMIT",
    "UCS2_SINGLE_LIMIT",
    "Encoding",
    "Segmentation",
    "UnencodableText",
    "decode_gsm7",
    "decode_ucs2",
    "encode_gsm7",
    "encode_ucs2",
    "gsm7_septet_count",
    "is_gsm7",
    "pack_septets",
    "segment",
    "split",
    "unpack_septets",
]

GSM7_SINGLE_LIMIT = 160
GSM7_PART_LIMIT = 153
UCS2_SINGLE_LIMIT = 70
UCS2_PART_LIMIT = 67

_ESC = 0x1B

# Index = septet value (TS 23.038 6.2.1). 0x1B is the escape to the extension table, not a
# character: it holds a placeholder that every derived table leaves out, so a literal ESC in
# the input is not GSM-7 (and an ESC ESC pair decodes to a space, as 6.2.1.1 asks).
_GSM_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# Default extension table (TS 23.038 6.2.1.1); each costs two septets, ESC + code.
_GSM_EXT_TABLE: dict[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

GSM7_BASIC_CHARS: frozenset[str] = frozenset(_GSM_BASIC_TABLE) - {"\x1b"}
GSM7_EXTENSION_CHARS: frozenset[str] = frozenset(_GSM_EXT_TABLE)
GSM7_CHARS: frozenset[str] = GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS

# The ASCII members of the two tables, as delete sets for bytes.translate (the fast path).
# tests/unit/test_encoding.py checks they agree with the tables above.
_ASCII_BASIC = (
    b"\n\r !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
_ASCII_EXT = b"\f^{}\\[~]|"
_ASCII_GSM = _ASCII_BASIC + _ASCII_EXT

# Non-ASCII input falls back to a regex: sre scans a character class in C and stops at the
# first miss, which beats building a set from the text.
_NOT_GSM_RE = re.compile("[^" + re.escape("".join(sorted(GSM7_CHARS))) + "]")

_GSM_ENCODE: dict[int, str] = {
    ord(char): chr(code) for code, char in enumerate(_GSM_BASIC_TABLE) if code != _ESC
}
_GSM_ENCODE.update({ord(char): f"\x1b{code:c}" for char, code in _GSM_EXT_TABLE.items()})
_GSM_DECODE_BASIC = _GSM_BASIC_TABLE.replace("\x1b", " ")
_GSM_DECODE_EXT: dict[int, str] = {code: char for char, code in _GSM_EXT_TABLE.items()}


class UnencodableText(ValueError):
    """The text has a character the requested encoding cannot represent."""


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


_LIMITS: dict[Encoding, tuple[int, int]] = {
    Encoding.GSM7: (GSM7_SINGLE_LIMIT, GSM7_PART_LIMIT),
    Encoding.UCS2: (UCS2_SINGLE_LIMIT, UCS2_PART_LIMIT),
}


@dataclass(frozen=True, slots=True)
class Segmentation:
    """How a text is sent.

    ``units`` counts septets for GSM7 (two per extension character) and UTF-16 code units for
    UCS2 (two per character outside the BMP). ``parts`` is the number of SMS billed and sent:
    1 when ``units`` fits a single message (the empty text included), else the number of
    concatenated parts after a greedy fill that never splits an escape or surrogate pair.
    """

    encoding: Encoding
    units: int
    parts: int

    @property
    def part_limits(self) -> tuple[int, int]:
        """``(single, concatenated)`` unit limits of this encoding: (160, 153) or (70, 67).

        A text of at most ``single`` units is one message; a longer one is cut into parts of
        at most ``concatenated`` units each (one less when a pair would straddle the cut).
        """
        return _LIMITS[self.encoding]

    @property
    def part_limit(self) -> int:
        """The most units any one part of this text can hold."""
        single, concatenated = _LIMITS[self.encoding]
        return single if self.parts == 1 else concatenated


def gsm7_septet_count(text: str) -> int | None:
    """Septets needed to send ``text`` in GSM-7, or None if it is not GSM-7."""
    if text.isascii():
        rest = text.encode("ascii").translate(None, _ASCII_BASIC)
        if not rest:
            return len(text)
        if rest.translate(None, _ASCII_EXT):
            return None
        return len(text) + len(rest)
    if _NOT_GSM_RE.search(text) is not None:
        return None
    return len(text) + sum(map(text.count, _GSM_EXT_TABLE))


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic or extension table."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _ASCII_GSM)
    return _NOT_GSM_RE.search(text) is None


def _classify(text: str) -> tuple[Encoding, int]:
    septets = gsm7_septet_count(text)
    if septets is not None:
        return Encoding.GSM7, septets
    if text.isascii():
        return Encoding.UCS2, len(text)
    # surrogatepass: a lone surrogate still occupies one code unit on the wire budget, and
    # counting must not raise; encode_ucs2 is where it gets rejected.
    return Encoding.UCS2, len(text.encode("utf-16-le", "surrogatepass")) // 2


# Texts with two-unit characters are cut on their wire form, where the rule is local: a cut
# that would land right after an ESC septet or a high surrogate moves back by one. That needs
# a look at one unit per part instead of a walk over every character.


def _mark_escapes(text: str) -> str:
    """``text`` with an ESC before each extension character: one item per septet.

    Only where the escapes fall matters for cutting, not the septet values, and a few
    str.replace calls stay in C where str.translate to two-character strings goes through
    its slow generic path for the whole text.
    """
    for char in _GSM_EXT_TABLE:
        if char in text:
            text = text.replace(char, "\x1b" + char)
    return text


def _septet_cuts(septets: str, limit: int) -> list[int]:
    """Part ends, in septets, of GSM-7 text as laid out by _mark_escapes."""
    cuts: list[int] = []
    end = 0
    while end < len(septets):
        end += limit
        if end >= len(septets):
            end = len(septets)
        elif septets[end - 1] == "\x1b":
            end -= 1
        cuts.append(end)
    return cuts


def _code_unit_cuts(utf16le: bytes, limit: int) -> list[int]:
    """Part ends, in code units, of well-formed UTF-16-LE."""
    total = len(utf16le) // 2
    cuts: list[int] = []
    end = 0
    while end < total:
        end += limit
        if end >= total:
            end = total
        elif 0xD8 <= utf16le[2 * end - 1] <= 0xDB:
            end -= 1
        cuts.append(end)
    return cuts


def _char_cuts(text: str, limit: int) -> list[int]:
    """Part ends, in characters, for UCS-2 text holding lone surrogates.

    Such a str has no well-formed UTF-16 form to cut (and two lone halves would fuse into
    one character on a round trip), so it is walked per character; it is rare and invalid
    anyway, as encode_ucs2 refuses it.
    """
    cuts: list[int] = []
    used = 0
    for index, char in enumerate(text):
        cost = 2 if char > "\uffff" else 1
        if used + cost > limit:
            cuts.append(index)
            used = 0
        used += cost
    cuts.append(len(text))
    return cuts


def segment(text: str) -> Segmentation:
    """Pick the encoding for ``text`` and count its units and SMS parts."""
    encoding, units = _classify(text)
    single, concatenated = _LIMITS[encoding]
    if units <= single:
        return Segmentation(encoding, units, 1)
    if units == len(text):
        return Segmentation(encoding, units, -(-units // concatenated))
    if encoding is Encoding.GSM7:
        cuts = _septet_cuts(_mark_escapes(text), concatenated)
    else:
        try:
            cuts = _code_unit_cuts(text.encode("utf-16-le"), concatenated)
        except UnicodeEncodeError:
            cuts = _char_cuts(text, concatenated)
    return Segmentation(encoding, units, len(cuts))


def split(text: str) -> list[str]:
    """The texts of the parts ``text`` is sent as; ``"".join(split(text)) == text``.

    Always ``segment(text).parts`` items, so the empty text gives ``[""]``.
    """
    encoding, units = _classify(text)
    single, concatenated = _LIMITS[encoding]
    if units <= single:
        return [text]
    if units == len(text):
        return [text[start : start + concatenated] for start in range(0, len(text), concatenated)]
    if encoding is Encoding.GSM7:
        septets = _mark_escapes(text)
        parts: list[str] = []
        start = septet_start = escapes = 0
        for septet_end in _septet_cuts(septets, concatenated):
            # Each ESC septet before the cut is a character that took two septets.
            escapes += septets.count("\x1b", septet_start, septet_end)
            end = septet_end - escapes
            parts.append(text[start:end])
            start, septet_start = end, septet_end
        return parts
    try:
        utf16le = text.encode("utf-16-le")
    except UnicodeEncodeError:
        cuts = _char_cuts(text, concatenated)
        return [text[start:end] for start, end in pairwise((0, *cuts))]
    cuts = _code_unit_cuts(utf16le, concatenated)
    return [utf16le[2 * start : 2 * end].decode("utf-16-le") for start, end in pairwise((0, *cuts))]


def _unencodable(text: str, what: str) -> UnencodableText:
    match = _NOT_GSM_RE.search(text)
    if match is None:
        return UnencodableText(f"text cannot be encoded as {what}")
    char = match.group()
    return UnencodableText(
        f"character {char!r} (U+{ord(char):04X}) at index {match.start()} has no {what} encoding"
    )


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM-7: one septet per byte, extension characters as 0x1B + code.

    Raises UnencodableText if a character is in neither table.
    """
    if not is_gsm7(text):
        raise _unencodable(text, "GSM 03.38")
    return text.translate(_GSM_ENCODE).encode("ascii")


def decode_gsm7(data: bytes) -> str:
    """Decode unpacked GSM-7 septets.

    Per TS 23.038 6.2.1.1 an escape followed by a code the extension table does not define
    shows the basic-table character for that code, and ESC ESC (or a trailing ESC) shows a
    space. Raises ValueError for bytes above 0x7F, which are not septets.
    """
    if not data.isascii():
        raise ValueError("GSM-7 septets must be below 0x80")
    if _ESC not in data:
        return data.decode("ascii").translate(_GSM_DECODE_BASIC)
    pieces: list[str] = []
    start = 0
    while (esc := data.find(_ESC, start)) >= 0:
        pieces.append(data[start:esc].decode("ascii").translate(_GSM_DECODE_BASIC))
        if esc + 1 == len(data):
            pieces.append(" ")
            return "".join(pieces)
        code = data[esc + 1]
        pieces.append(_GSM_DECODE_EXT.get(code) or _GSM_DECODE_BASIC[code])
        start = esc + 2
    pieces.append(data[start:].decode("ascii").translate(_GSM_DECODE_BASIC))
    return "".join(pieces)


def pack_septets(septets: bytes) -> bytes:
    """Pack septets into octets, LSB first (TS 23.038 6.1.2.1.1).

    Septet ``i`` occupies bits ``7i .. 7i+6`` of a little-endian bit string; the spare bits of
    the last octet are zero (the receiver knows the septet count from TP-UDL / sm_length).
    """
    if not septets.isascii():
        raise ValueError("septets must be below 0x80")
    packed = bytearray()
    acc = bits = 0
    for septet in septets:
        acc |= septet << bits
        bits += 7
        if bits >= 8:
            packed.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        packed.append(acc)
    return bytes(packed)


def unpack_septets(data: bytes, count: int) -> bytes:
    """Inverse of pack_septets: the first ``count`` septets of ``data``, one per byte."""
    if count < 0 or count * 7 > len(data) * 8:
        raise ValueError(f"{len(data)} octets cannot hold {count} septets")
    septets = bytearray(count)
    octets = iter(data)
    acc = bits = 0
    for index in range(count):
        if bits < 7:
            acc |= next(octets) << bits
            bits += 8
        septets[index] = acc & 0x7F
        acc >>= 7
        bits -= 7
    return bytes(septets)


def encode_ucs2(text: str) -> bytes:
    """UTF-16-BE, as SMPP data_coding 0x08 carries it (astral characters as surrogate pairs).

    Raises UnencodableText for a lone surrogate code point, which UTF-16 cannot represent.
    """
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise UnencodableText(
            f"lone surrogate U+{ord(text[exc.start]):04X} at index {exc.start} has no UTF-16 "
            "encoding"
        ) from exc


def decode_ucs2(data: bytes, *, errors: str = "strict") -> str:
    """Decode UTF-16-BE; ``errors`` as for bytes.decode (inbound text may be malformed)."""
    return data.decode("utf-16-be", errors)
