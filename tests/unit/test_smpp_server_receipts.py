"""The server's receipt deliver_sm reads back as the same receipt with the client's parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.connectors.smpp.pdu import DeliverSm, decode, encode
from tidings.connectors.smpp.receipts import MessageState, receipt_from_pdu
from tidings.messages.status import Status
from tidings.smpp_server.receipts import message_state_of, receipt_pdu
from tidings.smpp_server.store import PendingReceipt


def _pending(status: str, originator: str = "Acme") -> PendingReceipt:
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    return PendingReceipt(1, 2, 12345, status, None, at, "380971234567", originator, "hi", 2, at)


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
