"""Delivery receipts: the text form in its real-world variants, TLVs, states, id matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.connectors.smpp.pdu import DataSm, DeliverSm
from tidings.connectors.smpp.receipts import (
    STAT_TEXT,
    IdFormat,
    IdNormaliser,
    MessageState,
    ReceiptText,
    canonical_id,
    format_receipt_text,
    parse_receipt_text,
    receipt_from_pdu,
    state_from_stat,
    status_of,
)
from tidings.connectors.smpp.tlv import Tag, c_string, int_value
from tidings.messages.status import Status

STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2603011200 done date:2603011201 "
    "stat:DELIVRD err:000 text:Hello world"
)


def test_standard_text() -> None:
    assert parse_receipt_text(STANDARD) == ReceiptText(
        id="0123456789",
        sub="001",
        dlvrd="001",
        submit_date="2603011200",
        done_date="2603011201",
        stat="DELIVRD",
        err="000",
        text="Hello world",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # no text: field at all
        (
            "id:abc sub:001 dlvrd:000 submit date:2603011200 done date:2603011201 stat:UNDELIV "
            "err:005",
            ReceiptText(
                id="abc",
                sub="001",
                dlvrd="000",
                submit_date="2603011200",
                done_date="2603011201",
                stat="UNDELIV",
                err="005",
            ),
        ),
        # fields missing, upper-case keys, lower-case stat
        ("ID:77 STAT:delivrd", ReceiptText(id="77", stat="delivrd")),
        # underscores and no spaces in the date keys, a capital Text:
        (
            "id:5 submit_date:2603011200 donedate:2603011201 stat:EXPIRED err:0 Text:x stat:y",
            ReceiptText(
                id="5",
                submit_date="2603011200",
                done_date="2603011201",
                stat="EXPIRED",
                err="0",
                text="x stat:y",
            ),
        ),
        # empty values and extra spaces
        ("id:  A1B2  sub: dlvrd:  stat:  REJECTD  err:", ReceiptText(id="A1B2", stat="REJECTD")),
        # fields in another order, comma separated
        ("stat:ACCEPTD,id:99,err:000", ReceiptText(id="99", stat="ACCEPTD", err="000")),
        # an empty text:
        ("id:1 stat:DELIVRD err:000 text:", ReceiptText(id="1", stat="DELIVRD", err="000")),
    ],
)
def test_odd_texts(text: str, expected: ReceiptText) -> None:
    assert parse_receipt_text(text) == expected


def test_not_a_receipt() -> None:
    assert parse_receipt_text("Hi, see you at 10:30") is None
    assert parse_receipt_text("") is None
    # "valid:" is not "id:", "submit date" needs its key
    assert parse_receipt_text("invalid:3") is None


@pytest.mark.parametrize(
    ("stat", "status"),
    [
        ("ENROUTE", Status.SENT),
        ("DELIVRD", Status.DELIVERED),
        ("EXPIRED", Status.EXPIRED),
        ("DELETED", Status.REJECTED),
        ("UNDELIV", Status.UNDELIVERED),
        ("ACCEPTD", Status.SENT),
        ("UNKNOWN", Status.UNKNOWN),
        ("REJECTD", Status.REJECTED),
        ("delivered", Status.DELIVERED),
        ("FAILED", Status.UNDELIVERED),
        ("GARBAGE", Status.UNKNOWN),
    ],
)
def test_stat_to_status(stat: str, status: Status) -> None:
    assert status_of(state_from_stat(stat)) is status


def test_every_message_state_maps() -> None:
    for state in MessageState:
        assert state_from_stat(STAT_TEXT[state]) is state
        status_of(state)


def test_receipt_from_text_only() -> None:
    pdu = DeliverSm(esm_class=0x04, short_message=STANDARD.encode())
    receipt = receipt_from_pdu(pdu)
    assert receipt is not None
    assert (receipt.message_id, receipt.status, receipt.detail) == (
        "0123456789",
        Status.DELIVERED,
        "SMPP stat:DELIVRD err:000",
    )


def test_tlvs_win_over_text() -> None:
    pdu = DeliverSm(
        esm_class=0x04,
        short_message=b"id:999 stat:DELIVRD err:000",
        tlvs={
            Tag.RECEIPTED_MESSAGE_ID: c_string("abc"),
            Tag.MESSAGE_STATE: int_value(MessageState.UNDELIVERABLE, 1),
            Tag.NETWORK_ERROR_CODE: bytes([3, 0, 27]),
        },
    )
    receipt = receipt_from_pdu(pdu)
    assert receipt is not None
    assert (receipt.message_id, receipt.status, receipt.error) == (
        "abc",
        Status.UNDELIVERED,
        "000 net:3/27",
    )


def test_tlv_only_receipt_and_data_sm() -> None:
    tlvs: dict[int, bytes] = {Tag.RECEIPTED_MESSAGE_ID: b"7f", Tag.MESSAGE_STATE: b"\x03"}
    receipt = receipt_from_pdu(DataSm(esm_class=0x04, tlvs=tlvs))
    assert receipt is not None and (receipt.message_id, receipt.status) == ("7f", Status.EXPIRED)


def test_mo_and_flagless_receipts() -> None:
    assert receipt_from_pdu(DeliverSm(short_message=b"hello there")) is None
    assert receipt_from_pdu(DeliverSm(esm_class=0x04, short_message=b"no id here")) is None
    # some SMSCs forget the receipt flag: a text with an id and a stat still counts
    flagless = receipt_from_pdu(DeliverSm(short_message=b"id:12 stat:DELIVRD"))
    assert flagless is not None and flagless.status is Status.DELIVERED
    ucs2 = DeliverSm(
        esm_class=0x04, data_coding=8, short_message="id:5 stat:EXPIRED".encode("utf-16-be")
    )
    receipt = receipt_from_pdu(ucs2)
    assert receipt is not None and receipt.status is Status.EXPIRED
    intermediate = receipt_from_pdu(DeliverSm(esm_class=0x20, short_message=b"id:1 stat:ENROUTE"))
    assert intermediate is not None and intermediate.intermediate


def test_canonical_ids() -> None:
    assert canonical_id(" 000ABC ") == "abc"
    assert canonical_id("0000") == "0"
    assert canonical_id("") == ""


@pytest.mark.parametrize(
    ("fmt", "submitted", "receipt"),
    [
        (IdFormat.AS_IS, "0000AbC", "abc"),
        (IdFormat.AS_IS, "12345", "0012345"),
        (IdFormat.HEX_TO_DEC, "0001E240", "123456"),
        (IdFormat.HEX_TO_DEC, "ff", "000255"),
        (IdFormat.DEC_TO_HEX, "123456", "1E240"),
        (IdFormat.DEC_TO_HEX, "0255", "00ff"),
    ],
)
def test_receipt_ids_meet_submitted_ids(fmt: IdFormat, submitted: str, receipt: str) -> None:
    ids = IdNormaliser(fmt)
    assert ids.receipt(receipt) == ids.submitted(submitted)


def test_auto_learns_hex_to_dec() -> None:
    ids = IdNormaliser(IdFormat.AUTO)
    stored = [ids.submitted(f"{n:08X}") for n in (0x1E240, 0x1E241)]
    assert ids.learnt is None
    assert ids.receipt("123456") == stored[0]  # only the hex reading of 123456 is known
    assert ids.learnt is IdFormat.HEX_TO_DEC
    assert ids.receipt("123457") == stored[1]
    assert ids.receipt("0000000123457") == stored[1]


def test_auto_is_not_fooled_by_ids_the_same_in_both() -> None:
    ids = IdNormaliser(IdFormat.AUTO)
    ids.submitted("7")
    assert ids.receipt("7") == "7"
    assert ids.learnt is None
    ids.submitted("abc")
    assert ids.receipt("ABC") == "abc"
    assert ids.learnt is IdFormat.AS_IS


@given(
    st.text("0123456789abcdefABCDEF", min_size=1, max_size=20),
    st.sampled_from(list(MessageState)),
    st.text("0123456789", min_size=3, max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_property_written_receipts_read_back(
    message_id: str, state: MessageState, err: str
) -> None:
    text = format_receipt_text(message_id, STAT_TEXT[state], err=err, text="any text: stat:x")
    parsed = parse_receipt_text(text)
    assert parsed is not None
    assert (parsed.id, state_from_stat(parsed.stat or ""), parsed.err) == (message_id, state, err)
    receipt = receipt_from_pdu(DeliverSm(esm_class=4, short_message=text.encode()))
    assert receipt is not None and receipt.state is state


@given(st.integers(1, 2**63))
@settings(max_examples=200, deadline=None)
def test_property_hex_dec_matching(number: int) -> None:
    for fmt, submitted, receipt in (
        (IdFormat.HEX_TO_DEC, f"{number:020X}", str(number)),
        (IdFormat.DEC_TO_HEX, f"{number:020d}", f"{number:x}".upper()),
        (IdFormat.AS_IS, f"{number:030d}", str(number)),
    ):
        ids = IdNormaliser(fmt)
        assert ids.receipt(receipt) == ids.submitted(submitted)
