"""MO PDUs (deliver_sm / data_sm that are no receipts) as the inbound sink takes them."""

from __future__ import annotations

import hashlib
from datetime import datetime

from tidings.connectors.base import InboundItem, InboundMo, InboundPiece
from tidings.connectors.smpp.concat import assembly_key, join_leniently
from tidings.connectors.smpp.pdu import HEADER, DataSm, DeliverSm, encode
from tidings.connectors.smpp.text import TextCharset, TextRefused, read_part

__all__ = ["fingerprint", "inbound_item"]


def inbound_item(pdu: DeliverSm | DataSm, charset: TextCharset, now: datetime) -> InboundItem:
    """An MO PDU as the inbound sink takes it: a whole message, or one part of a long one.

    ``charset`` is what data_coding 0 means on this bind (the supplier's ``charset``), as a
    client's does on the SMPP server. Raises TextRefused for binary and reserved codings.
    """
    short_message = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    part = read_part(short_message, pdu.data_coding, pdu.esm_class, pdu.tlvs, default=charset)
    if part.concat is not None and part.concat.total > 1:
        concat = part.concat
        if not 1 <= concat.seqnum <= concat.total:
            raise TextRefused(f"part {concat.seqnum} of {concat.total}")
        return InboundPiece(
            sender=pdu.source_addr,
            recipient=pdu.destination_addr,
            assembly=assembly_key(pdu.source_addr, pdu.destination_addr, concat),
            seqnum=concat.seqnum,
            total=concat.total,
            units=part.units,
            alphabet=part.alphabet,
            received_at=now,
        )
    return InboundMo(
        sender=pdu.source_addr,
        recipient=pdu.destination_addr,
        text=join_leniently([part]),  # as for long ones: kept whatever its octets
        received_at=now,
        fingerprint=fingerprint(pdu),
    )


def fingerprint(pdu: DeliverSm | DataSm) -> str:
    """The PDU's content without its header (the sequence number differs on a resend)."""
    return "pdu:" + hashlib.sha256(encode(pdu)[HEADER.size :]).hexdigest()[:56]
