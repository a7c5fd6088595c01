"""The server's receipt deliver_sm reads back as the same receipt with the client's parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.connectors.smpp.pdu import DeliverSm, decode, encode
from tidings.connectors.smpp.receipts import MessageState, receipt_from_pdu
from tidings.connectors.smpp.text import TextCharset
from tidings.messages.encoding import decode_gsm7
from tidings.messages.status import Status
from tidings.smpp_server.receipts import message_state_of, receipt_pdu
from tidings.smpp_server.store import PendingReceipt


def _pending(status: str, originator: str = "Acme") -> PendingReceipt:
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    return PendingReceipt(
        1, 2, 12345, None, status, None, at, "380971234567", originator, "hi", 2, at
    )


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (Status.DELIVERED, MessageState.DELIVERED),
        (Status.UNDELIVERED, MessageState.UNDELIVERABLE),
        (Status.FAILED, MessageState.UNDELIVERABLE),
        (Status.EXPIRED, MessageState.EXPIRED),
        (Status.REJECTED, MessageState.REJECTED),
    ],
)
def test_receipt_round_trip(status: Status, state: MessageState) -> None:
    pdu = decode(encode(receipt_pdu(_pending(status))))
    assert isinstance(pdu, DeliverSm) and pdu.esm_class == 0x04
    receipt = receipt_from_pdu(pdu)
    assert receipt is not None
    assert receipt.message_id == "12345" and receipt.state is state
    text = pdu.short_message.decode()
    assert text.startswith("id:12345 sub:002 ")
    assert "submit date:2603011230 done date:2603011230" in text
    assert (pdu.source_addr, pdu.destination_addr, pdu.dest_addr_ton) == (
        "380971234567",
        "Acme",
        5,
    )


def test_numeric_originator_and_query_states() -> None:
    pdu = receipt_pdu(_pending(Status.DELIVERED, originator="+4670123"))
    assert (pdu.dest_addr_ton, pdu.dest_addr_npi) == (1, 1)
    assert message_state_of(Status.QUEUED) is MessageState.ENROUTE
    assert message_state_of(Status.SCHEDULED) is MessageState.SCHEDULED
    assert message_state_of(Status.UNKNOWN) is MessageState.UNKNOWN


def _with(body: str, reply_id: str | None = None) -> PendingReceipt:
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    return PendingReceipt(1, 2, 12345, reply_id, "delivered", None, at, "3809", "Acme", body, 1, at)


def test_a_part_receipt_carries_the_parts_own_id() -> None:
    pdu = receipt_pdu(_with("hi", reply_id="4f1c0a"))
    receipt = receipt_from_pdu(pdu)
    assert receipt is not None and receipt.message_id == "4f1c0a"
    assert pdu.short_message.startswith(b"id:4f1c0a ")


def test_receipt_text_field_keeps_the_characters() -> None:
    plain = receipt_pdu(_with("Hello there"))
    assert plain.data_coding == 0 and plain.short_message.endswith(b"text:Hello there")
    gsm = receipt_pdu(_with("{€} price_list @ home, and more"))
    assert gsm.data_coding == 0
    assert decode_gsm7(gsm.short_message).endswith("text:{€} price_list @ hom")
    latin = receipt_pdu(_with("café"), TextCharset.LATIN1)
    assert latin.short_message.decode("latin-1").endswith("text:café")
    emoji = receipt_pdu(_with("hi 😀 there"))
    assert emoji.data_coding == 8
    assert emoji.short_message.decode("utf-16-be").endswith("text:hi 😀 there")
    receipt = receipt_from_pdu(emoji)  # the TLVs carry id and state whatever the text coding
    assert receipt is not None and receipt.state is MessageState.DELIVERED
