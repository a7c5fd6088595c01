"""Reading inbound messages: `POST /api/mo` arguments, MO PDUs from an SMSC, numbers and
keywords. Pure functions: properties over generated input, and the PDU shapes SMSCs send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.api.client.inbound import parse_limit, parse_since
from tidings.api.dlr.mo_parsing import parse_mo
from tidings.api.dlr.parsing import ArgumentsRejected
from tidings.connectors.base import InboundMo, InboundPiece
from tidings.connectors.smpp.concat import join_leniently
from tidings.connectors.smpp.mo import fingerprint, inbound_item
from tidings.connectors.smpp.pdu import DataSm, DeliverSm
from tidings.connectors.smpp.text import InboundPart, TextCharset, TextRefused
from tidings.connectors.smpp.tlv import Tag, int_value
from tidings.errors import InvalidRequest
from tidings.inbound.service import keyword_of, normalise_keyword, normalise_number

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIELDS = ("sender", "recipient", "text", "received_at", "supplier_message_id", "_login", "x")

pairs = st.lists(st.tuples(st.sampled_from(FIELDS), st.text(max_size=40)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(pairs)
def test_parse_mo_takes_a_message_or_names_every_bad_argument(
    given_pairs: list[tuple[str, str]],
) -> None:
    try:
        mo = parse_mo(given_pairs, NOW)
    except ArgumentsRejected as rejected:
        assert rejected.problems
        assert all(p.parameter in FIELDS for p in rejected.problems)
        return
    assert mo.sender and mo.recipient and mo.received_at <= NOW
    assert ("text", mo.text) in given_pairs


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"\A\+?[0-9]{3,15}\Z"),
    st.from_regex(r"\A[0-9]{3,15}\Z"),
    st.text(max_size=200).filter(lambda t: "\x00" not in t),
    st.none() | st.from_regex(r"\A[a-z0-9-]{1,40}\Z"),
)
def test_parse_mo_keeps_what_was_sent(
    sender: str, recipient: str, text: str, reference: str | None
) -> None:
    arguments = [("sender", sender), ("recipient", recipient), ("text", text)]
    if reference is not None:
        arguments.append(("supplier_message_id", reference))
    mo = parse_mo(arguments, NOW)
    assert mo == InboundMo(sender, recipient, text, NOW, reference)


def test_parse_mo_times() -> None:
    base = [("sender", "380971234567"), ("recipient", "4567"), ("text", "x")]
    earlier = parse_mo([*base, ("received_at", "2026-03-01 11:00:00")], NOW)
    assert earlier.received_at == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    zoned = parse_mo([*base, ("received_at", "2026-03-01T13:30:00+02:00")], NOW)
    assert zoned.received_at == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    with pytest.raises(ArgumentsRejected):
        parse_mo([*base, ("received_at", "9999-12-31T23:59:59-01:00")], NOW)
    ahead = parse_mo([*base, ("received_at", "2027-01-01T00:00:00Z")], NOW)
    assert ahead.received_at == NOW  # a supplier's clock running ahead
    with pytest.raises(ArgumentsRejected) as rejected:
        parse_mo([*base, ("received_at", "yesterday"), ("sender", "other")], NOW)
    assert {p.parameter for p in rejected.value.problems} == {"received_at", "sender"}


@given(st.text(max_size=30))
def test_numbers_normalise_or_are_refused(number: str) -> None:
    try:
        cleaned = normalise_number(number)
    except InvalidRequest:
        return
    assert cleaned.isalnum() and cleaned.isascii() and 1 <= len(cleaned) <= 20
    assert normalise_number(cleaned) == cleaned


@given(st.text(max_size=60))
def test_the_keyword_is_the_first_word_upper_case(text: str) -> None:
    word = keyword_of(text)
    assert word == word.upper()
    if word:
        assert normalise_keyword(word) == word
    assert keyword_of(f"  {text}") == word


def test_keywords() -> None:
    assert keyword_of("pizza, large") == "PIZZA"
    assert keyword_of("  стоп") == "СТОП"
    assert keyword_of("...") == ""
    assert normalise_keyword(" Pizza ") == "PIZZA" and normalise_keyword(None) == ""
    with pytest.raises(InvalidRequest):
        normalise_keyword("two words")


def _deliver(short_message: bytes, **fields: object) -> DeliverSm:
    return DeliverSm(
        source_addr="380971234567",
        destination_addr="4567",
        short_message=short_message,
        **fields,  # type: ignore[arg-type]
    )


def test_a_whole_mo_in_each_coding() -> None:
    gsm = inbound_item(_deliver(b"Hello"), TextCharset.GSM7, NOW)
    assert isinstance(gsm, InboundMo) and gsm.text == "Hello" and gsm.fingerprint
    ucs2 = inbound_item(
        _deliver("Привіт".encode("utf-16-be"), data_coding=8), TextCharset.GSM7, NOW
    )
    assert isinstance(ucs2, InboundMo) and ucs2.text == "Привіт"
    latin = inbound_item(_deliver("café".encode("latin-1"), data_coding=3), TextCharset.GSM7, NOW)
    assert isinstance(latin, InboundMo) and latin.text == "café"
    payload = _deliver(b"", tlvs={Tag.MESSAGE_PAYLOAD: b"A longer text " * 30})
    long_one = inbound_item(payload, TextCharset.GSM7, NOW)
    assert isinstance(long_one, InboundMo) and long_one.text == "A longer text " * 30
    data_sm = DataSm(
        source_addr="380971234567", destination_addr="4567", tlvs={Tag.MESSAGE_PAYLOAD: b"hi"}
    )
    from_data_sm = inbound_item(data_sm, TextCharset.GSM7, NOW)
    assert isinstance(from_data_sm, InboundMo) and from_data_sm.text == "hi"
    with pytest.raises(TextRefused):
        inbound_item(_deliver(b"\x00\x01", data_coding=4), TextCharset.GSM7, NOW)


def test_parts_by_udh_8_and_16_bit_and_by_sar() -> None:
    eight = inbound_item(
        _deliver(bytes([5, 0, 3, 7, 2, 1]) + b"Hel", esm_class=0x40), TextCharset.GSM7, NOW
    )
    sixteen = inbound_item(
        _deliver(bytes([6, 8, 4, 1, 7, 2, 2]) + b"lo", esm_class=0x40), TextCharset.GSM7, NOW
    )
    sar = inbound_item(
        _deliver(
            b"lo",
            tlvs={
                Tag.SAR_MSG_REF_NUM: int_value(7, 2),
                Tag.SAR_TOTAL_SEGMENTS: int_value(2, 1),
                Tag.SAR_SEGMENT_SEQNUM: int_value(2, 1),
            },
        ),
        TextCharset.GSM7,
        NOW,
    )
    assert isinstance(eight, InboundPiece) and isinstance(sixteen, InboundPiece)
    assert isinstance(sar, InboundPiece)
    assert (eight.seqnum, eight.total, sixteen.seqnum, sar.seqnum) == (1, 2, 2, 2)
    # 8-bit reference 7 and 16-bit reference 0x0107 are different messages.
    assert eight.assembly != sixteen.assembly and eight.assembly == sar.assembly
    parts = [InboundPart(None, p.units, p.alphabet) for p in (eight, sar)]
    assert join_leniently(parts) == "Hello"


def test_parts_that_do_not_join_are_kept_leniently() -> None:
    odd = [InboundPart(None, "Привіт".encode("utf-16-be")[:-1], "ucs2")]
    assert join_leniently(odd).startswith("Приві")


def test_a_resend_has_the_same_fingerprint_whatever_its_sequence_number() -> None:
    first, again, other = _deliver(b"Hello"), _deliver(b"Hello"), _deliver(b"Hello!")
    first.sequence_number, again.sequence_number = 1, 99
    assert fingerprint(first) == fingerprint(again) != fingerprint(other)


@given(st.text(max_size=30))
def test_since_and_limit_are_read_or_refused_with_code_7(value: str) -> None:
    for parse in (parse_since, parse_limit):
        try:
            parse(value)
        except InvalidRequest as refused:
            assert refused.reason == "invalid"


def test_since_and_limit() -> None:
    assert parse_since(None) == (0, None) and parse_since("42") == (42, None)
    assert parse_since("2026-03-01 12:00:00") == (0, NOW)
    assert parse_since("2026-03-01T14:00:00+02:00") == (0, NOW)
    assert parse_limit(None) == 100 and parse_limit("000007") == 7 and parse_limit("1000") == 1000
    with pytest.raises(InvalidRequest):
        parse_since("9999-12-31T23:59:59-01:00")
    for bad in ("0", "1001", "-1", "ten"):
        with pytest.raises(InvalidRequest):
            parse_limit(bad)
