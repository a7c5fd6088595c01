"""Message text on the SMPP wire: data_coding, concatenation (UDH, SAR, message_payload).

Outbound, :func:`encode_message` turns one text into the short_message / TLVs of each
submit_sm. The parts are cut by ``messages.encoding.split`` (the cut the price was computed
from), so the part count sent is the one billed, with one exception: a 16-bit reference UDH
is one octet longer, which leaves 152 septets / 66 UCS-2 units per part and can add a part
(documented in docs/smpp.md).

    charset        how a GSM-7 text is written: ``gsm7`` (data_coding 0, one septet per
                   octet, what most SMSCs want), ``gsm7-packed`` (data_coding 0, septets
                   packed 8 per 7 octets), ``latin1`` (data_coding 3; the SMSC converts for
                   the air, GSM characters Latin-1 lacks — Greek capitals, € — send the
                   message as UCS-2), ``ascii`` (data_coding 1, IA5; same rule for the rest)
    long           ``udh`` (8-bit reference), ``udh16`` (16-bit reference), ``sar``
                   (sar_* TLVs), ``payload`` (one submit_sm with the whole text in
                   message_payload; the SMSC splits)

Inbound, :func:`decode_short_message` reads the text and concatenation data of a
deliver_sm (MO traffic, leniently: what does not decode is replaced). The SMPP server is
strict instead: :func:`read_part` takes one submit_sm's user data apart without decoding it
and :func:`join_text` decodes the parts of a message as one byte string, so a UCS-2
surrogate pair or a GSM-7 escape cut by the client's split arrives whole; it refuses
(:class:`TextRefused`) binary codings, bytes the coding does not define and control
characters other than CR and LF (docs/smpp-server.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from tidings.connectors.smpp.tlv import Tag, int_value
from tidings.messages.encoding import (
    GSM7_EXTENSION_CHARS,
    UnencodableText,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    is_gsm7,
    pack_septets,
    split,
    unpack_septets,
)

__all__ = [
    "ESM_UDHI",
    "Concat",
    "DataCoding",
    "DecodedText",
    "InboundPart",
    "LongMode",
    "TextCharset",
    "TextOptions",
    "TextRefused",
    "WirePart",
    "check_part",
    "decode_short_message",
    "decode_text",
    "encode_message",
    "join_text",
    "read_part",
    "split_by_units",
]

ESM_UDHI = 0x40  # esm_class bit: short_message starts with a user data header
MAX_PARTS = 255


class DataCoding(IntEnum):
    DEFAULT = 0x00  # SMSC default alphabet, GSM 03.38 in practice
    IA5 = 0x01
    OCTET_UNSPECIFIED = 0x02
    LATIN1 = 0x03
    OCTET = 0x04
    UCS2 = 0x08


class TextCharset(StrEnum):
    GSM7 = "gsm7"
    GSM7_PACKED = "gsm7-packed"
    LATIN1 = "latin1"
    ASCII = "ascii"


class LongMode(StrEnum):
    UDH = "udh"
    UDH16 = "udh16"
    SAR = "sar"
    PAYLOAD = "payload"


_DEFAULT_CODING = {
    TextCharset.GSM7: DataCoding.DEFAULT,
    TextCharset.GSM7_PACKED: DataCoding.DEFAULT,
    TextCharset.LATIN1: DataCoding.LATIN1,
    TextCharset.ASCII: DataCoding.IA5,
}


@dataclass(frozen=True, slots=True)
class TextOptions:
    charset: TextCharset = TextCharset.GSM7
    long: LongMode = LongMode.UDH
    gsm_data_coding: int | None = None  # data_coding for GSM-7 texts; None: by charset

    @property
    def gsm_coding(self) -> int:
        if self.gsm_data_coding is not None:
            return self.gsm_data_coding
        return int(_DEFAULT_CODING[self.charset])


@dataclass(frozen=True, slots=True)
class WirePart:
    """What one submit_sm carries for (a part of) a message."""

    short_message: bytes
    data_coding: int
    esm_class: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)


# --- outbound -------------------------------------------------------------------------


def _cost_gsm(char: str) -> int:
    return 2 if char in GSM7_EXTENSION_CHARS else 1


def _cost_utf16(char: str) -> int:
    return 2 if char > "\uffff" else 1


def split_by_units(text: str, gsm: bool, single: int, multi: int) -> list[str]:
    """Cut ``text`` greedily at ``multi`` units a part (one part if it fits ``single``).

    A unit is a septet (``gsm``, extension characters cost two) or a UTF-16 code unit;
    a pair is never split. ``split_by_units(t, True, 160, 153) == encoding.split(t)`` for
    GSM-7 texts; this exists for the limits ``split`` does not know (16-bit UDH).
    """
    cost = _cost_gsm if gsm else _cost_utf16
    if sum(map(cost, text)) <= single:
        return [text]
    parts: list[str] = []
    start = used = 0
    for index, char in enumerate(text):
        units = cost(char)
        if used + units > multi:
            parts.append(text[start:index])
            start, used = index, 0
        used += units
    parts.append(text[start:])
    return parts


def _alphabet(text: str, encoding: str, options: TextOptions) -> str:
    """ "gsm", "latin1", "ascii" or "ucs2": how this text goes out."""
    if encoding != "gsm7" or not is_gsm7(text):
        return "ucs2"
    if options.charset is TextCharset.LATIN1:
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            return "ucs2"
        return "latin1"
    if options.charset is TextCharset.ASCII:
        return "ascii" if text.isascii() else "ucs2"
    return "gsm"


def _udh(options: TextOptions, reference: int, total: int, seqnum: int) -> bytes:
    if options.long is LongMode.UDH16:
        return bytes((6, 0x08, 4, (reference >> 8) & 0xFF, reference & 0xFF, total, seqnum))
    return bytes((5, 0x00, 3, reference & 0xFF, total, seqnum))


_CR = b"\r"


def _pack_after(udh: bytes, septets: bytes) -> bytes:
    """UDH then packed septets, with the fill bits that align the first septet (23.040).

    When 7 bits of the last octet would be left over, a receiver would read them as one more
    septet ("@"): TS 23.038 6.1.2.3.1 fills them with CR instead, which readers drop.
    """
    header_septets = -(-len(udh) * 8 // 7)
    if (header_septets + len(septets)) % 8 == 7:
        septets += _CR
    if not udh:
        return pack_septets(septets)
    packed = pack_septets(bytes(header_septets) + septets)
    return udh + packed[len(udh) :]


def encode_message(
    text: str, encoding: str, options: TextOptions, reference: int
) -> list[WirePart]:
    """The submit_sm payloads for one message, in part order.

    ``encoding`` is the message's own ("gsm7" or "ucs2", as priced); ``reference`` is the
    concatenation reference (the low 8 or 16 bits are used), the same on every retry.
    Raises UnencodableText when the text cannot be written at all (a lone surrogate).
    """
    alphabet = _alphabet(text, encoding, options)
    coding = options.gsm_coding if alphabet == "gsm" else int(_CODING[alphabet])
    packed = alphabet == "gsm" and options.charset is TextCharset.GSM7_PACKED

    def raw(part: str) -> bytes:
        if alphabet == "gsm":
            return encode_gsm7(part)
        if alphabet == "ucs2":
            return encode_ucs2(part)
        return part.encode(alphabet)

    if options.long is LongMode.PAYLOAD:
        data = raw(text)
        if packed:
            data = _pack_after(b"", data)
        if len(data) <= 254 and len(split(text)) == 1:
            return [WirePart(data, coding)]
        return [WirePart(b"", coding, 0, {Tag.MESSAGE_PAYLOAD: data})]

    gsm_like = alphabet != "ucs2"
    if options.long is LongMode.UDH16:
        texts = split_by_units(text, gsm_like, *((160, 152) if gsm_like else (70, 66)))
    elif gsm_like or not is_gsm7(text):
        texts = split(text)  # the priced cut
    else:
        texts = split_by_units(text, False, 70, 67)  # a GSM text forced to UCS-2
    if len(texts) > MAX_PARTS:
        raise UnencodableText(f"text needs {len(texts)} parts, at most {MAX_PARTS} are possible")
    if len(texts) == 1:
        data = raw(text)
        return [WirePart(_pack_after(b"", data) if packed else data, coding)]
    total = len(texts)
    parts: list[WirePart] = []
    for seqnum, piece in enumerate(texts, start=1):
        data = raw(piece)
        if options.long is LongMode.SAR:
            tlvs: dict[int, bytes] = {
                Tag.SAR_MSG_REF_NUM: int_value(reference & 0xFFFF, 2),
                Tag.SAR_TOTAL_SEGMENTS: int_value(total, 1),
                Tag.SAR_SEGMENT_SEQNUM: int_value(seqnum, 1),
            }
            parts.append(WirePart(_pack_after(b"", data) if packed else data, coding, 0, tlvs))
            continue
        udh = _udh(options, reference, total, seqnum)
        body = _pack_after(udh, data) if packed else udh + data
        parts.append(WirePart(body, coding, ESM_UDHI))
    return parts


_CODING = {"latin1": DataCoding.LATIN1, "ascii": DataCoding.IA5, "ucs2": DataCoding.UCS2}


# --- inbound --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Concat:
    """Where a part belongs: the same reference and total on every part of one message."""

    reference: int
    total: int
    seqnum: int


@dataclass(frozen=True, slots=True)
class DecodedText:
    text: str
    concat: Concat | None
    udh: bytes = b""


def _alphabet_of(data_coding: int) -> str:
    """ "gsm", "ascii", "latin1", "ucs2" or "binary" for a data_coding (TS 23.038 4)."""
    if data_coding in (DataCoding.DEFAULT,):
        return "gsm"
    if data_coding == DataCoding.IA5:
        return "ascii"
    if data_coding == DataCoding.LATIN1:
        return "latin1"
    if data_coding == DataCoding.UCS2:
        return "ucs2"
    group = data_coding & 0xF0
    if group <= 0x30 or 0x40 <= group <= 0xB0:  # general / auto-deletion groups
        if data_coding & 0x20:
            return "binary"  # compressed
        return ("gsm", "binary", "ucs2", "binary")[(data_coding >> 2) & 0x03]
    if group == 0xF0:
        return "binary" if data_coding & 0x04 else "gsm"
    if group == 0xE0:
        return "ucs2"
    if group in (0xC0, 0xD0):
        return "gsm"
    return "binary"


def decode_text(data: bytes, data_coding: int, *, packed: bool = False, skip_bits: int = 0) -> str:
    """The text of ``data`` (user data without its UDH) under ``data_coding``.

    Never raises: octets that do not decode are replaced, GSM "default alphabet" data with
    octets above 0x7F (some SMSCs send Latin-1 under data_coding 0) is read as Latin-1.
    ``packed``/``skip_bits`` read packed septets (``skip_bits``: the UDH and fill bits).
    """
    alphabet = _alphabet_of(data_coding)
    if alphabet == "gsm":
        if packed:
            return decode_gsm7(_unpack(data, skip_bits))
        if data.isascii():
            return decode_gsm7(data)
        return data.decode("latin-1")
    if alphabet == "ucs2":
        return decode_ucs2(data[: len(data) // 2 * 2], errors="replace")
    if alphabet == "ascii":
        return data.decode("ascii", "replace")
    return data.decode("latin-1")


def _unpack(data: bytes, skip_bits: int) -> bytes:
    """Packed septets after ``skip_bits`` (a multiple of 7), without a CR fill septet."""
    available = len(data) * 8
    count = available // 7
    septets = unpack_septets(data, count)[skip_bits // 7 :]
    # No spare bits and a CR last: the sender's fill of 7 spare bits (TS 23.038 6.1.2.3.1).
    if septets and available % 7 == 0 and septets[-1:] == _CR:
        septets = septets[:-1]
    return septets


def parse_udh(data: bytes) -> tuple[bytes, Concat | None, bytes]:
    """Split user data into (UDH, concatenation info, the rest); a bad UDH is kept as text."""
    if not data:
        return b"", None, data
    length = data[0]
    if 1 + length > len(data):
        return b"", None, data
    udh = data[: 1 + length]
    concat: Concat | None = None
    pos = 1
    while pos + 2 <= len(udh):
        iei, size = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + size]
        if len(value) < size:
            break
        if iei == 0x00 and size == 3 and value[1]:
            concat = Concat(value[0], value[1], value[2])
        elif iei == 0x08 and size == 4 and value[2]:
            concat = Concat((value[0] << 8) | value[1], value[2], value[3])
        pos += 2 + size
    return udh, concat, data[1 + length :]


def decode_short_message(
    short_message: bytes,
    data_coding: int,
    esm_class: int = 0,
    tlvs: dict[int, bytes] | None = None,
    *,
    packed: bool = False,
) -> DecodedText:
    """Text and concatenation data of an inbound message (message_payload wins)."""
    tlvs = tlvs or {}
    data = tlvs.get(Tag.MESSAGE_PAYLOAD, short_message)
    packed = packed and _alphabet_of(data_coding) == "gsm"  # packing is for septets only
    data, udh, concat, skip_bits = _split_user_data(data, esm_class, tlvs, packed=packed)
    return DecodedText(
        decode_text(data, data_coding, packed=packed, skip_bits=skip_bits), concat, udh
    )


def _split_user_data(
    data: bytes, esm_class: int, tlvs: dict[int, bytes], *, packed: bool
) -> tuple[bytes, bytes, Concat | None, int]:
    """(text bytes, UDH, concatenation by UDH or else SAR, septets' bit offset): with packed
    GSM-7 the UDH is padded to a septet boundary inside the packed data, which is kept."""
    udh = b""
    concat: Concat | None = None
    skip_bits = 0
    if esm_class & ESM_UDHI:
        udh, concat, rest = parse_udh(data)
        if packed and udh:
            skip_bits = -(-len(udh) * 8 // 7) * 7
            rest = data
        data = rest
    if concat is None:
        concat = _sar(tlvs)
    return data, udh, concat, skip_bits


def _sar(tlvs: dict[int, bytes]) -> Concat | None:
    ref = tlvs.get(Tag.SAR_MSG_REF_NUM)
    total = tlvs.get(Tag.SAR_TOTAL_SEGMENTS)
    seqnum = tlvs.get(Tag.SAR_SEGMENT_SEQNUM)
    if not (ref and total and seqnum):
        return None
    return Concat(int.from_bytes(ref, "big"), total[0], seqnum[0])


# --- inbound, strict (the SMPP server) -------------------------------------------------


class TextRefused(ValueError):
    """Submitted text the gateway does not take: a binary or unknown data_coding, bytes the
    coding does not define, a lone surrogate, or a control character other than CR and LF."""


@dataclass(frozen=True, slots=True)
class InboundPart:
    """One submit_sm's user data, not yet decoded.

    ``units`` is the user data without its UDH: one septet per byte for GSM-7 (unpacked if
    it came packed, fill bits dropped), the octets as sent for the other alphabets. Parts of
    one message are joined on these, and only the whole is decoded.
    """

    concat: Concat | None
    units: bytes
    alphabet: str  # "gsm", "latin1", "ascii" or "ucs2"


# C0 and C1 controls and DEL; CR and LF are text. (Form feed, which GSM-7 can escape, is a
# page break on some handsets and a control character everywhere else: refused.)
_CONTROL_RE = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_DEFAULT_ALPHABET = {
    TextCharset.GSM7: "gsm",
    TextCharset.GSM7_PACKED: "gsm",
    TextCharset.LATIN1: "latin1",
    TextCharset.ASCII: "ascii",
}


# SMPP 3.4 5.2.19 gives these values its own meanings (GSM 03.38 would read some as GSM-7).
_SMPP_OTHER = {
    0x02: "binary",
    0x04: "binary",
    0x05: "JIS",
    0x06: "Cyrillic",
    0x07: "Latin/Hebrew",
    0x09: "pictogram",
    0x0A: "ISO-2022-JP",
    0x0D: "extended Kanji JIS",
    0x0E: "KS C 5601",
}


def read_part(
    short_message: bytes,
    data_coding: int,
    esm_class: int = 0,
    tlvs: dict[int, bytes] | None = None,
    *,
    default: TextCharset = TextCharset.GSM7,
) -> InboundPart:
    """The concatenation data and undecoded user data of one submitted part.

    ``default`` is what data_coding 0 means for this client (Kannel's ``alt-charset``);
    other GSM-7 data codings (the 0xF0 and general groups) are GSM-7, packed only when the
    client's default is packed. Raises TextRefused for binary and reserved codings.
    """
    tlvs = tlvs or {}
    data = tlvs.get(Tag.MESSAGE_PAYLOAD, short_message)
    alphabet = _alphabet_of(data_coding)
    if data_coding == DataCoding.DEFAULT:
        alphabet = _DEFAULT_ALPHABET[default]
    elif data_coding in _SMPP_OTHER:
        alphabet = _SMPP_OTHER[data_coding]
    if alphabet == "binary":
        raise TextRefused(f"data_coding 0x{data_coding:02X} is binary or reserved")
    if alphabet not in ("gsm", "latin1", "ascii", "ucs2"):
        raise TextRefused(f"data_coding 0x{data_coding:02X} ({alphabet}) is not supported")
    packed = alphabet == "gsm" and default is TextCharset.GSM7_PACKED
    data, _, concat, skip_bits = _split_user_data(data, esm_class, tlvs, packed=packed)
    units = _unpack(data, skip_bits) if packed else data
    return InboundPart(concat, units, alphabet)


def join_text(parts: Sequence[InboundPart]) -> str:
    """The text of a message's parts (in seqnum order), decoded as one under the first
    part's alphabet. Raises TextRefused as documented on the class."""
    alphabet = parts[0].alphabet
    data = b"".join(p.units for p in parts)
    try:
        if alphabet == "gsm":
            text = decode_gsm7(data)
        elif alphabet == "ucs2":
            if len(data) % 2:
                raise TextRefused("UCS-2 text of an odd number of octets")
            text = decode_ucs2(data)
        elif alphabet == "ascii":
            text = data.decode("ascii")
        else:
            text = data.decode("latin-1")
    except ValueError as error:  # UnicodeDecodeError, septets above 0x7F
        if isinstance(error, TextRefused):
            raise
        raise TextRefused(f"text does not decode as {alphabet}: {error}") from None
    if (control := _CONTROL_RE.search(text)) is not None:
        raise TextRefused(
            f"control character U+{ord(control.group()):04X} at index {control.start()}"
        )
    return text


def check_part(part: InboundPart) -> None:
    """Refuse one part of a long message that no other part could make valid (before it
    is stored and answered): octets its alphabet lacks, control characters. A surrogate
    pair or escape cut at either end is left for :func:`join_text` to judge."""
    units = part.units
    if part.alphabet == "ucs2":
        if len(units) % 2:
            raise TextRefused("UCS-2 text of an odd number of octets")
        text = units.decode("utf-16-be", "surrogatepass")
    elif part.alphabet in ("gsm", "ascii"):
        if not units.isascii():
            raise TextRefused(f"octets above 0x7F are not {part.alphabet}")
        text = decode_gsm7(units) if part.alphabet == "gsm" else units.decode("ascii")
    else:
        text = units.decode("latin-1")
    if (control := _CONTROL_RE.search(text)) is not None:
        raise TextRefused(
            f"control character U+{ord(control.group()):04X} at index {control.start()}"
        )
