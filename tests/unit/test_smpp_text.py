"""Message text on the SMPP wire: data_coding, UDH (8/16-bit), SAR, message_payload."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tidings.connectors.smpp.text import (
    ESM_UDHI,
    Concat,
    DataCoding,
    LongMode,
    TextCharset,
    TextOptions,
    WirePart,
    decode_short_message,
    decode_text,
    encode_message,
    parse_udh,
    split_by_units,
)
from tidings.connectors.smpp.tlv import Tag
from tidings.messages.encoding import (
    GSM7_CHARS,
    UnencodableText,
    encode_gsm7,
    pack_septets,
    segment,
    split,
)


def read_back(parts: list[WirePart], options: TextOptions) -> str:
    packed = options.charset is TextCharset.GSM7_PACKED
    texts = [
        decode_short_message(p.short_message, p.data_coding, p.esm_class, p.tlvs, packed=packed)
        for p in parts
    ]
    if len(texts) > 1:
        concats = [t.concat for t in texts]
        assert all(c is not None for c in concats)
        assert [c.seqnum for c in concats if c] == list(range(1, len(parts) + 1))
        assert {(c.reference, c.total) for c in concats if c} == {
            (concats[0].reference, len(parts))  # type: ignore[union-attr]
        }
    return "".join(t.text for t in texts)


def test_short_gsm_text_is_one_unpacked_part() -> None:
    [part] = encode_message("Hello {world} €5", "gsm7", TextOptions(), reference=1)
    assert part == WirePart(encode_gsm7("Hello {world} €5"), 0, 0, {})


def test_ucs2_text_with_emoji() -> None:
    [part] = encode_message("Привіт 👋", "ucs2", TextOptions(), reference=1)
    assert part.data_coding == DataCoding.UCS2
    assert part.short_message == "Привіт 👋".encode("utf-16-be")


def test_udh_8_bit_parts_match_the_priced_split() -> None:
    text = "a" * 200 + "€"
    parts = encode_message(text, "gsm7", TextOptions(), reference=0x1234)
    assert len(parts) == segment(text).parts == 2
    assert parts[0].esm_class == ESM_UDHI
    assert parts[0].short_message[:6] == bytes([5, 0, 3, 0x34, 2, 1])
    assert parts[1].short_message[:6] == bytes([5, 0, 3, 0x34, 2, 2])
    assert [decode_short_message(p.short_message, 0, p.esm_class).text for p in parts] == split(
        text
    )


def test_udh_16_bit_reference() -> None:
    parts = encode_message("b" * 320, "gsm7", TextOptions(long=LongMode.UDH16), reference=0x1234)
    assert len(parts) == 3  # 152 septets a part
    assert parts[2].short_message[:7] == bytes([6, 8, 4, 0x12, 0x34, 3, 3])
    udh, concat, rest = parse_udh(parts[2].short_message)
    assert (udh[0], concat, rest) == (6, Concat(0x1234, 3, 3), b"b" * 16)


def test_sar_tlvs() -> None:
    parts = encode_message("c" * 170, "gsm7", TextOptions(long=LongMode.SAR), reference=0x4321)
    assert [p.esm_class for p in parts] == [0, 0]
    assert parts[1].tlvs == {
        Tag.SAR_MSG_REF_NUM: b"\x43\x21",
        Tag.SAR_TOTAL_SEGMENTS: b"\x02",
        Tag.SAR_SEGMENT_SEQNUM: b"\x02",
    }
    assert parts[0].short_message == b"c" * 153


def test_message_payload_carries_the_whole_text() -> None:
    text = "д" * 100
    [part] = encode_message(text, "ucs2", TextOptions(long=LongMode.PAYLOAD), reference=1)
    assert part.short_message == b""
    assert part.tlvs == {Tag.MESSAGE_PAYLOAD: text.encode("utf-16-be")}
    short = encode_message("hi", "gsm7", TextOptions(long=LongMode.PAYLOAD), reference=1)
    assert short == [WirePart(b"hi", 0)]


def test_packed_gsm_with_udh_has_fill_bits() -> None:
    text = "A" * 160 + "B"
    options = TextOptions(charset=TextCharset.GSM7_PACKED)
    parts = encode_message(text, "gsm7", options, reference=9)
    # 6 octets of UDH, one fill bit, 153 septets: 140 octets, a full SMS.
    assert [len(p.short_message) for p in parts] == [140, 14]
    assert read_back(parts, options) == text
    [single] = encode_message("hello", "gsm7", options, reference=1)
    assert single.short_message == pack_septets(encode_gsm7("hello"))
    # 7 septets leave 7 spare bits: filled with CR, so an "@" is not read into them.
    [seven] = encode_message("1234567", "gsm7", options, reference=1)
    assert seven.short_message == pack_septets(b"1234567\r")
    assert read_back([seven], options) == "1234567"
    [eight] = encode_message("1234567@", "gsm7", options, reference=1)
    assert read_back([eight], options) == "1234567@"


def test_latin1_and_ascii_charsets() -> None:
    latin = TextOptions(charset=TextCharset.LATIN1)
    [part] = encode_message("Ça {ü}", "gsm7", latin, reference=1)
    assert (part.data_coding, part.short_message) == (3, "Ça {ü}".encode("latin-1"))
    # A GSM character Latin-1 lacks: the message goes as UCS-2 instead.
    [greek] = encode_message("ΔΣ", "gsm7", latin, reference=1)
    assert greek.data_coding == DataCoding.UCS2
    [ia5] = encode_message("plain", "gsm7", TextOptions(charset=TextCharset.ASCII), reference=1)
    assert (ia5.data_coding, ia5.short_message) == (1, b"plain")
    assert encode_message("x", "gsm7", TextOptions(gsm_data_coding=1), 1)[0].data_coding == 1


def test_unencodable_text() -> None:
    with pytest.raises(UnencodableText):
        encode_message("lone \ud800", "ucs2", TextOptions(), reference=1)


def test_decode_text_is_forgiving() -> None:
    assert decode_text(b"caf\xe9", 0) == "café"  # Latin-1 under the default alphabet
    assert decode_text(b"\x00\x41\x00", 8) == "A"  # odd length
    assert decode_text("Ω".encode("utf-16-be"), 0x18) == "Ω"  # general group, UCS-2
    assert decode_text(b"\x01\x02", 0xF4) == "\x01\x02"  # binary
    assert decode_text(encode_gsm7("@ok"), 0xF0) == "@ok"


gsm_text = st.text(st.sampled_from(sorted(GSM7_CHARS)), max_size=700)
any_text = st.text(st.characters(exclude_categories=["Cs"], max_codepoint=0x1F64F), max_size=400)


@given(
    st.one_of(gsm_text, any_text),
    st.sampled_from(list(LongMode)),
    st.sampled_from(list(TextCharset)),
    st.integers(0, 0xFFFF),
)
@example("0" * 70 + "\x1f", LongMode.UDH, TextCharset.GSM7_PACKED, 0)  # UCS-2 despite packed
@settings(max_examples=400, deadline=None)
def test_property_parts_read_back_to_the_text(
    text: str, mode: LongMode, charset: TextCharset, reference: int
) -> None:
    if charset is TextCharset.GSM7_PACKED:
        # A part's final CR on an octet boundary reads as the fill septet (TS 23.038).
        text = text.replace("\r", " ")
    seg = segment(text)
    options = TextOptions(charset=charset, long=mode)
    parts = encode_message(text, seg.encoding.value, options, reference)
    assert read_back(parts, options) == text
    if mode is LongMode.PAYLOAD:
        assert len(parts) == 1
    elif mode is LongMode.UDH16:
        assert len(parts) >= seg.parts
    else:
        assert len(parts) == seg.parts  # the count sent is the count priced
    for part in parts:
        assert len(part.short_message) <= 254
        if part.data_coding == DataCoding.UCS2 or charset is TextCharset.GSM7_PACKED:
            assert len(part.short_message) <= 140  # one SMS of user data


@given(gsm_text)
@settings(max_examples=200, deadline=None)
def test_property_split_by_units_agrees_with_split(text: str) -> None:
    assert split_by_units(text, True, 160, 153) == split(text)
