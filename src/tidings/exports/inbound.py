"""Inbound messages (MO) in statistics exports: records in the messages' columns.

An inbound record is marked by its channel, `inbound`; the renderer makes it an `sms` row
whose `direction` is `inbound` (every other row's is `outbound`): `msisdn` is the sender,
`originator` the client's number it was sent to, `price` 0, `Incoming date` when it was
received, no sending or DLR date, status `delivered` (docs/inbound.md, docs/exports.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Select, String, false, literal, null, select, type_coerce

from tidings.exports.filters import ExportFilter
from tidings.inbound.models import InboundMessage

INBOUND_CHANNEL = "inbound"
SMS = "sms"


def wants_inbound(spec: ExportFilter) -> bool:
    """Inbound messages belong in exports of every type and of `sms`, not those by message
    id (those ids are outbound messages') nor those filtered by source, country or status
    other than delivered (an inbound message has none of those but `delivered`)."""
    if spec.by_ids or spec.message_type not in (None, SMS):
        return False
    if spec.source_type is not None or spec.country is not None:
        return False
    if spec.time_sent_from is not None or spec.time_sent_until is not None:
        return False
    return spec.statuses is None or "delivered" in spec.statuses


def inbound_export_query(client_id: int, spec: ExportFilter) -> Select[Any]:
    i = InboundMessage
    query = select(
        i.id,
        literal(INBOUND_CHANNEL).label("channel"),
        i.sender,
        literal("").label("country"),
        i.recipient,
        type_coerce(literal(0), BigInteger),
        literal("").label("currency"),
        type_coerce(i.received_at, String).label("time_in"),
        type_coerce(null(), String),
        type_coerce(null(), String),
        literal("delivered").label("status"),
        i.text,
    ).where(i.client_id == client_id)
    if spec.time_in_from is not None:
        query = query.where(i.received_at >= spec.time_in_from)
    if spec.time_in_until is not None:
        query = query.where(i.received_at < spec.time_in_until)
    if spec.msisdns is not None:
        query = query.where(i.sender.in_(spec.msisdns) if spec.msisdns else false())
    if spec.originator is not None:
        query = query.where(i.recipient == spec.originator)
    return query
