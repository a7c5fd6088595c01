from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.messages import encoding as enc
from tidings.messages.encoding import (
    GSM7_BASIC_CHARS,
    GSM7_CHARS,
    GSM7_EXTENSION_CHARS,
    Encoding,
    Segmentation,
    UnencodableText,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    gsm7_septet_count,
    is_gsm7,
    pack_septets,
    segment,
    split,
    unpack_septets,
)

# Septet -> Unicode code point, written out independently from the module's literal table,
# after the Unicode consortium's GSM0338.TXT (with 0x09 as capital C cedilla, per TS 23.038).
_SPEC_BASIC: dict[int, int] = {
    0x00: 0x0040, 0x01: 0x00A3, 0x02: 0x0024, 0x03: 0x00A5, 0x04: 0x00E8, 0x05: 0x00E9,
    0x06: 0x00F9, 0x07: 0x00EC, 0x08: 0x00F2, 0x09: 0x00C7, 0x0A: 0x000A, 0x0B: 0x00D8,
    0x0C: 0x00F8, 0x0D: 0x000D, 0x0E: 0x00C5, 0x0F: 0x00E5, 0x10: 0x0394, 0x11: 0x005F,
    0x12: 0x03A6, 0x13: 0x0393, 0x14: 0x039B, 0x15: 0x03A9, 0x16: 0x03A0, 0x17: 0x03A8,
    0x18: 0x03A3, 0x19: 0x0398, 0x1A: 0x039E, 0x1C: 0x00C6, 0x1D: 0x00E6, 0x1E: 0x00DF,
    0x1F: 0x00C9, 0x24: 0x00A4, 0x40: 0x00A1, 0x5B: 0x00C4, 0x5C: 0x00D6, 0x5D: 0x00D1,
    0x5E: 0x00DC, 0x5F: 0x00A7, 0x60: 0x00BF, 0x7B: 0x00E4, 0x7C: 0x00F6, 0x7D: 0x00F1,
    0x7E: 0x00FC, 0x7F: 0x00E0,
}  # fmt: skip
# Everything else from 0x20 to 0x7E not listed above maps to the same ASCII code point.
_SPEC_BASIC.update({code: code for code in range(0x20, 0x7F) if code not in _SPEC_BASIC})
_SPEC_EXT: dict[int, int] = {
    0x0A: 0x000C, 0x14: 0x005E, 0x28: 0x007B, 0x29: 0x007D, 0x2F: 0x005C, 0x3C: 0x005B,
    0x3D: 0x007E, 0x3E: 0x005D, 0x40: 0x007C, 0x65: 0x20AC,
}  # fmt: skip

EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair in UTF-16


def ref_units(text: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return sum(2 if char in GSM7_EXTENSION_CHARS else 1 for char in text)
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text)


def ref_split(text: str) -> list[str]:
    """Character-by-character greedy fill, the obvious (slow) way."""
    encoding = Encoding.GSM7 if set(text) <= GSM7_CHARS else Encoding.UCS2
    single, concatenated = (160, 153) if encoding is Encoding.GSM7 else (70, 67)
    if ref_units(text, encoding) <= single:
        return [text]
    parts: list[str] = []
    current = ""
    used = 0
    for char in text:
        cost = ref_units(char, encoding)
        if used + cost > concatenated:
            parts.append(current)
            current, used = "", 0
        current += char
        used += cost
    parts.append(current)
    return parts


# --- the tables -------------------------------------------------------------------------


def test_basic_table_matches_spec() -> None:
    assert len(enc._GSM_BASIC_TABLE) == 128
    actual = {code: ord(char) for code, char in enumerate(enc._GSM_BASIC_TABLE) if code != 0x1B}
    assert actual == _SPEC_BASIC
    assert {chr(point) for point in _SPEC_BASIC.values()} == GSM7_BASIC_CHARS


def test_extension_table_matches_spec() -> None:
    assert {code: ord(char) for char, code in enc._GSM_EXT_TABLE.items()} == _SPEC_EXT
    assert {chr(point) for point in _SPEC_EXT.values()} == GSM7_EXTENSION_CHARS
    assert not GSM7_BASIC_CHARS & GSM7_EXTENSION_CHARS


def test_ascii_fast_path_tables_agree_with_alphabet() -> None:
    ascii_basic = {char for char in GSM7_BASIC_CHARS if char.isascii()}
    ascii_ext = {char for char in GSM7_EXTENSION_CHARS if char.isascii()}
    assert set(enc._ASCII_BASIC.decode("ascii")) == ascii_basic
    assert len(enc._ASCII_BASIC) == len(ascii_basic)
    assert set(enc._ASCII_EXT.decode("ascii")) == ascii_ext
    assert len(enc._ASCII_EXT) == len(ascii_ext)


@pytest.mark.parametrize("char", ["\x1b", "`", "\t", "\x00", "ç", "Ж", "\u2126", "\u2206", "ô"])
def test_characters_outside_the_alphabet(char: str) -> None:
    # ESC is the escape code, not a character; U+2126/U+2206 are look-alikes of Ω and Δ.
    assert not is_gsm7(char)
    assert gsm7_septet_count(char) is None
    assert segment(char).encoding is Encoding.UCS2


# --- segment / split: fixed examples ------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "parts"), [(1, 1), (153, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3)]
)
def test_gsm7_boundaries(length: int, parts: int) -> None:
    assert segment("a" * length) == Segmentation(Encoding.GSM7, length, parts)
    assert len(split("a" * length)) == parts


@pytest.mark.parametrize(
    ("length", "parts"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_ucs2_boundaries(length: int, parts: int) -> None:
    assert segment("Ж" * length) == Segmentation(Encoding.UCS2, length, parts)
    assert len(split("Ж" * length)) == parts


def test_extension_characters_cost_two_septets() -> None:
    assert segment("€" * 80) == Segmentation(Encoding.GSM7, 160, 1)
    assert segment("€" * 81) == Segmentation(Encoding.GSM7, 162, 2)
    assert [len(part) for part in split("€" * 81)] == [76, 5]
    assert segment("a{b}") == Segmentation(Encoding.GSM7, 6, 1)


def test_escape_pair_on_the_153rd_septet_moves_to_next_part() -> None:
    text = "a" * 152 + "€" + "a" * 152  # 306 septets: ceil(306 / 153) would say 2
    assert segment(text) == Segmentation(Encoding.GSM7, 306, 3)
    assert split(text) == ["a" * 152, "€" + "a" * 151, "a"]


def test_escape_pair_ending_exactly_on_the_153rd_septet_stays() -> None:
    text = "a" * 151 + "€" + "a" * 153
    assert split(text) == ["a" * 151 + "€", "a" * 153]
    assert segment(text).parts == 2


def test_surrogate_pair_on_the_67_unit_boundary_moves_to_next_part() -> None:
    text = "Ж" * 66 + EMOJI + "Ж" * 66  # 134 units: ceil(134 / 67) would say 2
    assert segment(text) == Segmentation(Encoding.UCS2, 134, 3)
    assert split(text) == ["Ж" * 66, EMOJI + "Ж" * 65, "Ж"]


def test_surrogate_pairs_in_a_single_message() -> None:
    assert segment(EMOJI * 35) == Segmentation(Encoding.UCS2, 70, 1)
    # 67 units per part hold 33 pairs, not 33.5.
    assert segment(EMOJI * 36) == Segmentation(Encoding.UCS2, 72, 2)
    assert [len(part) for part in split(EMOJI * 36)] == [33, 3]


def test_examples() -> None:
    assert segment("Привет") == Segmentation(Encoding.UCS2, 6, 1)
    assert segment("test sms") == Segmentation(Encoding.GSM7, 8, 1)
    assert segment("ç").encoding is Encoding.UCS2
    assert segment("Ç") == Segmentation(Encoding.GSM7, 1, 1)
    assert segment("Ça va, Δ") == Segmentation(Encoding.GSM7, 8, 1)
    assert segment("naïve").encoding is Encoding.UCS2
    assert segment("back`tick") == Segmentation(Encoding.UCS2, 9, 1)


def test_empty_text() -> None:
    assert segment("") == Segmentation(Encoding.GSM7, 0, 1)
    assert split("") == [""]


def test_segmentation_limits_and_immutability() -> None:
    gsm_single = segment("hi")
    assert gsm_single.part_limits == (160, 153)
    assert gsm_single.part_limit == 160
    assert segment("a" * 200).part_limit == 153
    assert segment("Ж").part_limits == (70, 67)
    assert segment("Ж" * 71).part_limit == 67
    with pytest.raises(dataclasses.FrozenInstanceError):
        gsm_single.parts = 2  # type: ignore[misc]


def test_encoding_is_a_str_enum() -> None:
    assert str(Encoding.GSM7) == "gsm7"
    assert f"{Encoding.UCS2}" == "ucs2"
    assert isinstance(Encoding.GSM7, str)
    assert Encoding("ucs2") is Encoding.UCS2


# --- codecs: fixed examples -------------------------------------------------------------


def test_encode_gsm7_examples() -> None:
    assert encode_gsm7("@£$_") == b"\x00\x01\x02\x11"
    assert encode_gsm7("€") == b"\x1b\x65"
    assert encode_gsm7("\f^{}\\[~]|") == bytes.fromhex(
        "1B0A 1B14 1B28 1B29 1B2F 1B3C 1B3D 1B3E 1B40"
    )
    assert encode_gsm7("Hi!") == b"Hi!"
    assert encode_gsm7("") == b""


def test_encode_gsm7_rejects_other_text() -> None:
    with pytest.raises(UnencodableText, match=r"U\+00E7.*index 3"):
        encode_gsm7("Ok ça")
    with pytest.raises(ValueError):
        encode_gsm7("Привет")


def test_decode_gsm7_escape_fallbacks() -> None:
    assert decode_gsm7(b"\x1b\x65 5") == "€ 5"
    assert decode_gsm7(b"\x1bA") == "A"  # undefined extension code: basic-table character
    assert decode_gsm7(b"\x1b\x1bx") == " x"
    assert decode_gsm7(b"x\x1b") == "x "
    assert decode_gsm7(b"\x00\x7f") == "@à"
    with pytest.raises(ValueError):
        decode_gsm7(b"\x80")


def test_pack_septets_known_vector() -> None:
    # The "hellohello" example: 10 septets in 9 octets.
    assert pack_septets(b"hellohello") == bytes.fromhex("E8329BFD4697D9EC37")
    assert unpack_septets(bytes.fromhex("E8329BFD4697D9EC37"), 10) == b"hellohello"
    assert pack_septets(b"") == b""
    assert pack_septets(b"\x7f") == b"\x7f"


def test_pack_and_unpack_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        pack_septets(b"\x80")
    with pytest.raises(ValueError):
        unpack_septets(b"\x00" * 7, 9)
    with pytest.raises(ValueError):
        unpack_septets(b"", -1)
    assert unpack_septets(b"\x00" * 7, 8) == b"\x00" * 8


def test_ucs2_examples() -> None:
    assert encode_ucs2("Ж") == b"\x04\x16"
    assert encode_ucs2(EMOJI) == b"\xd8\x3d\xde\x00"
    assert decode_ucs2(b"\xd8\x3d\xde\x00") == EMOJI
    with pytest.raises(UnencodableText, match="index 1"):
        encode_ucs2("a\ud83d")
    # Counting still works on a lone surrogate; only encoding refuses it.
    assert segment("a\ud83d") == Segmentation(Encoding.UCS2, 2, 1)


def test_split_text_with_lone_surrogates() -> None:
    # Two lone halves are two characters of one unit each, free to be cut apart.
    text = "\ud83d" + "Ж" * 65 + EMOJI + "\ud83d\ude00" + "Ж" * 3
    assert segment(text) == Segmentation(Encoding.UCS2, 73, 2)
    assert split(text) == ["\ud83d" + "Ж" * 65, EMOJI + "\ud83d\ude00" + "Ж" * 3]
    text = "Ж" * 66 + "\ud83d\ude00" + "Ж" * 3
    assert split(text) == ["Ж" * 66 + "\ud83d", "\ude00" + "Ж" * 3]
    with pytest.raises(ValueError):
        decode_ucs2(b"\xd8\x3d")
    assert decode_ucs2(b"\xd8\x3d", errors="replace") == "\ufffd"


# --- properties -------------------------------------------------------------------------

gsm_text = st.text(alphabet=st.sampled_from(sorted(GSM7_CHARS)), max_size=700)
# Weighted towards the characters that make splitting interesting: extension characters,
# astral ones and non-GSM BMP ones, plus anything at all; and texts dense with them.
any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(GSM7_CHARS)),
        st.sampled_from(["€", "{", "\\", EMOJI, "\U0001f44d", "Ж", "ç"]),
        st.characters(),
    ),
    max_size=700,
) | st.text(alphabet=st.sampled_from(["a", "€", "~", EMOJI, "Ж"]), max_size=700)


@given(any_text)
def test_split_rejoins_and_matches_reference(text: str) -> None:
    parts = split(text)
    assert "".join(parts) == text
    assert parts == ref_split(text)
    assert all(parts) or parts == [""]


@given(any_text)
def test_every_part_fits_its_limit(text: str) -> None:
    seg = segment(text)
    parts = split(text)
    assert seg.parts == len(parts)
    single, concatenated = seg.part_limits
    limit = single if len(parts) == 1 else concatenated
    assert seg.part_limit == limit
    assert all(ref_units(part, seg.encoding) <= limit for part in parts)
    assert sum(ref_units(part, seg.encoding) for part in parts) == seg.units


@given(any_text)
def test_segment_counts_units(text: str) -> None:
    seg = segment(text)
    gsm = set(text) <= GSM7_CHARS
    assert is_gsm7(text) is gsm
    assert seg.encoding is (Encoding.GSM7 if gsm else Encoding.UCS2)
    assert seg.units == ref_units(text, seg.encoding)
    assert gsm7_septet_count(text) == (seg.units if gsm else None)
    if not gsm and not any("\ud800" <= char <= "\udfff" for char in text):
        assert seg.units == len(encode_ucs2(text)) // 2


@given(gsm_text)
def test_gsm_alphabet_text_is_gsm7(text: str) -> None:
    seg = segment(text)
    assert seg.encoding is Encoding.GSM7
    assert seg.parts == len(split(text))


@given(gsm_text)
def test_gsm7_round_trip(text: str) -> None:
    septets = encode_gsm7(text)
    assert len(septets) == gsm7_septet_count(text)
    assert max(septets, default=0) < 0x80
    assert decode_gsm7(septets) == text


@given(st.lists(st.integers(0, 0x7F), max_size=400).map(bytes))
def test_pack_unpack_round_trip(septets: bytes) -> None:
    packed = pack_septets(septets)
    assert len(packed) == (len(septets) * 7 + 7) // 8
    assert unpack_septets(packed, len(septets)) == septets


@given(gsm_text)
def test_packed_gsm_text_round_trip(text: str) -> None:
    septets = encode_gsm7(text)
    assert decode_gsm7(unpack_septets(pack_septets(septets), len(septets))) == text


@given(st.text(st.characters(codec="utf-8"), max_size=400))  # utf-8: no lone surrogates
def test_ucs2_round_trip(text: str) -> None:
    data = encode_ucs2(text)
    assert decode_ucs2(data) == text
    assert len(data) % 2 == 0
