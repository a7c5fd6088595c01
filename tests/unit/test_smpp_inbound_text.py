"""What the SMPP server reads from submitted parts: the parts' user data joined, then decoded
once (surrogate pairs and GSM-7 escapes cut by the client arrive whole), every data_coding."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.connectors.smpp.text import (
    ESM_UDHI,
    InboundPart,
    LongMode,
    TextCharset,
    TextOptions,
    TextRefused,
    _pack_after,
    check_part,
    encode_message,
    join_text,
    read_part,
)
from tidings.connectors.smpp.tlv import Tag, int_value
from tidings.messages.encoding import GSM7_CHARS, encode_gsm7, encode_ucs2, segment


@dataclass(frozen=True)
class Coding:
    """How a test writes text: the data_coding sent, what 0 means for the client, the units."""

    name: str
    data_coding: int
    default: TextCharset
    alphabet: str  # the characters it may hold

    def units(self, text: str) -> bytes:
        if self.alphabet == "gsm":
            return encode_gsm7(text)
        if self.alphabet == "ucs2":
            return encode_ucs2(text)
        return text.encode("latin-1" if self.alphabet == "latin1" else "ascii")

    @property
    def unit_size(self) -> int:
        return 2 if self.alphabet == "ucs2" else 1

    @property
    def packed(self) -> bool:
        return self.default is TextCharset.GSM7_PACKED and self.alphabet == "gsm"


CODINGS = [
    Coding("gsm7 unpacked", 0, TextCharset.GSM7, "gsm"),
    Coding("gsm7 packed", 0, TextCharset.GSM7_PACKED, "gsm"),
    Coding("0 as latin1", 0, TextCharset.LATIN1, "latin1"),
    Coding("0 as ascii", 0, TextCharset.ASCII, "ascii"),
    Coding("ia5", 1, TextCharset.GSM7, "ascii"),
    Coding("latin1", 3, TextCharset.GSM7, "latin1"),
    Coding("ucs2", 8, TextCharset.GSM7, "ucs2"),
    Coding("gsm7 class 1 (0xF1)", 0xF1, TextCharset.GSM7, "gsm"),
]

_CONTROLS = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\r", "\n"}
_GSM = sorted(GSM7_CHARS - _CONTROLS)
_LATIN1 = [chr(c) for c in range(0x100) if chr(c) not in _CONTROLS]
_ASCII = [c for c in _LATIN1 if c.isascii()]
_UNICODE = st.characters(
    blacklist_categories=("Cs", "Cc"), whitelist_characters="\r\n😀🇺🇦"
)  # emoji: surrogate pairs in UTF-16


def texts_for(coding: Coding) -> st.SearchStrategy[str]:
    alphabet: st.SearchStrategy[str]
    if coding.alphabet == "gsm":
        # Escape characters are what a cut can split; make them frequent.
        alphabet = st.one_of(st.sampled_from(_GSM), st.sampled_from("{}[]~|^\\€"))
    elif coding.alphabet == "latin1":
        alphabet = st.sampled_from(_LATIN1)
    elif coding.alphabet == "ascii":
        alphabet = st.sampled_from(_ASCII)
    else:
        alphabet = st.one_of(_UNICODE, st.sampled_from("😀🇺🇦€"))
    return st.text(alphabet, min_size=1, max_size=40)


def wire_part(
    coding: Coding, units: bytes, method: str, reference: int, total: int, seqnum: int
) -> tuple[bytes, int, dict[int, bytes]]:
    """(short_message, esm_class, tlvs) of one part sent by ``method``."""
    if method == "sar" or method == "payload":
        tlvs = {
            Tag.SAR_MSG_REF_NUM: int_value(reference, 2),
            Tag.SAR_TOTAL_SEGMENTS: int_value(total, 1),
            Tag.SAR_SEGMENT_SEQNUM: int_value(seqnum, 1),
        }
        data = _pack_after(b"", units) if coding.packed else units
        if method == "payload":
            tlvs[Tag.MESSAGE_PAYLOAD] = data
            return b"", 0, tlvs
        return data, 0, tlvs
    if method == "udh16":
        udh = bytes((6, 0x08, 4, reference >> 8, reference & 0xFF, total, seqnum))
    else:
        udh = bytes((5, 0x00, 3, reference & 0xFF, total, seqnum))
    return (_pack_after(udh, units) if coding.packed else udh + units), ESM_UDHI, {}


def read_back(coding: Coding, pieces: list[bytes], method: str, reference: int) -> str:
    parts: list[InboundPart] = []
    for seqnum, units in enumerate(pieces, start=1):
        short, esm_class, tlvs = wire_part(coding, units, method, reference, len(pieces), seqnum)
        part = read_part(short, coding.data_coding, esm_class, tlvs, default=coding.default)
        assert part.concat is not None
        assert (part.concat.total, part.concat.seqnum) == (len(pieces), seqnum)
        assert part.concat.reference == (reference & 0xFF if method == "udh" else reference)
        check_part(part)
        parts.append(part)
    return join_text(parts)


@pytest.mark.parametrize("coding", CODINGS, ids=lambda c: c.name)
@pytest.mark.parametrize("method", ["udh", "udh16", "sar", "payload"])
@settings(max_examples=25, deadline=None)
@given(data=st.data(), reference=st.integers(0, 0xFFFF))
def test_property_split_at_every_boundary_reads_back(
    coding: Coding, method: str, data: st.DataObject, reference: int
) -> None:
    text = data.draw(texts_for(coding))
    if coding.packed:
        # A part's final CR on an octet boundary reads as the fill septet (TS 23.038).
        text = text.replace("\r", " ")
    units = coding.units(text)
    size = coding.unit_size
    for cut in range(size, len(units), size):  # two parts, cut at every unit
        assert read_back(coding, [units[:cut], units[cut:]], method, reference) == text
    # Three parts at drawn cuts (one may be empty, as a client's last part can be).
    count = len(units) // size
    a, b = sorted(data.draw(st.lists(st.integers(0, count), min_size=2, max_size=2)))
    pieces = [units[: a * size], units[a * size : b * size], units[b * size :]]
    assert read_back(coding, pieces, method, reference) == text


def test_surrogate_pair_and_escape_cut_by_the_client() -> None:
    emoji = encode_ucs2("hi 😀!")
    assert len(emoji) == 12
    ucs2 = CODINGS[6]
    assert read_back(ucs2, [emoji[:8], emoji[8:]], "udh", 1) == "hi 😀!"  # high | low
    septets = encode_gsm7("a{b€")
    gsm = CODINGS[0]
    assert read_back(gsm, [septets[:2], septets[2:]], "sar", 9) == "a{b€"  # ESC | (
    packed = CODINGS[1]
    assert read_back(packed, [septets[:4], septets[4:]], "udh16", 300) == "a{b€"  # ESC | e


def test_ia5_is_text_and_data_coding_0_follows_the_client() -> None:
    assert join_text([read_part(b"Hello, world", 1)]) == "Hello, world"
    latin = "café".encode("latin-1")
    assert join_text([read_part(latin, 0, default=TextCharset.LATIN1)]) == "café"
    assert join_text([read_part(latin, 3)]) == "café"
    with pytest.raises(TextRefused):
        join_text([read_part(latin, 0)])  # GSM-7 has no octet above 0x7F
    with pytest.raises(TextRefused):
        join_text([read_part(latin, 1)])  # neither has IA5
    assert join_text([read_part(encode_gsm7("ÅΔ_"), 0)]) == "ÅΔ_"


@pytest.mark.parametrize(
    ("short_message", "data_coding"),
    [
        (b"nul\x00here", 1),
        (b"bell\x07", 3),
        (b"tab\there", 1),
        ("c1\x85".encode("latin-1"), 3),
        (b"\x00\x41\x00\x1b", 8),
        (b"\x1b\x0a", 0),  # GSM-7's form feed
        (b"\xd8\x3d\x00\x41", 8),  # a lone high surrogate
        (b"\x00\x41\x00", 8),  # odd UCS-2
    ],
)
def test_control_characters_and_bad_octets_are_refused(
    short_message: bytes, data_coding: int
) -> None:
    with pytest.raises(TextRefused):
        join_text([read_part(short_message, data_coding)])


def test_cr_lf_are_text() -> None:
    assert join_text([read_part(b"a\r\nb", 1)]) == "a\r\nb"


@pytest.mark.parametrize("data_coding", [2, 4, 0x04 | 0xF0, 0x24])
def test_binary_codings_are_refused(data_coding: int) -> None:
    with pytest.raises(TextRefused, match="binary"):
        read_part(b"\x01\x02", data_coding)


def test_check_part_leaves_cut_pairs_to_the_whole() -> None:
    high_only = InboundPart(None, b"\x00\x41\xd8\x3d", "ucs2")
    check_part(high_only)  # the low half may come in the next part
    with pytest.raises(TextRefused):
        check_part(InboundPart(None, b"\x00\x00", "ucs2"))
    with pytest.raises(TextRefused):
        check_part(InboundPart(None, b"\x80", "gsm"))


@pytest.mark.parametrize("data_coding", [5, 6, 7, 9, 0x0E])
def test_other_smpp_codings_are_refused(data_coding: int) -> None:
    with pytest.raises(TextRefused, match="not supported"):
        read_part(b"\x01\x02", data_coding)


@given(
    st.text(
        st.one_of(st.sampled_from(_GSM), _UNICODE, st.sampled_from("😀€{")),
        min_size=0,
        max_size=400,
    ),
    st.sampled_from(list(LongMode)),
    st.sampled_from([TextCharset.GSM7, TextCharset.GSM7_PACKED, TextCharset.LATIN1]),
    st.integers(0, 0xFFFF),
)
@settings(max_examples=300, deadline=None)
def test_property_connector_parts_read_back_by_the_server_rules(
    text: str, mode: LongMode, charset: TextCharset, reference: int
) -> None:
    """One set of coding rules: what the connector sends a supplier for a long message is
    what the server, reading as strictly as it does, joins back to the same text."""
    if charset is TextCharset.GSM7_PACKED:
        text = text.replace("\r", " ")  # the packed fill ambiguity, as above
    parts = encode_message(
        text, segment(text).encoding.value, TextOptions(charset, mode), reference
    )
    read = [
        read_part(p.short_message, p.data_coding, p.esm_class, p.tlvs, default=charset)
        for p in parts
    ]
    if len(read) > 1:
        assert [r.concat.seqnum for r in read if r.concat] == list(range(1, len(read) + 1))
    assert join_text(read) == text
