"""The receipts table: written in the status-change transaction, read by the server.

Only messages that came in over SMPP (``source == "smpp"``) and only final statuses make a
receipt, and only as the submit_sm's ``registered_delivery`` asked: 1 (near universal, no row
kept) for any final status, 2 for failures, 3 for deliveries, 0 none (``smpp_receipt_requests``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from tidings.accounts.models import Client
from tidings.clock import Clock
from tidings.connectors.smpp.pdu import DataSm, SubmitSm, decode
from tidings.connectors.smpp.text import decode_short_message
from tidings.db.arrays import none_of, one_of
from tidings.inbound.models import InboundMessage
from tidings.messages.changes import AppliedChange
from tidings.messages.models import Message
from tidings.messages.status import DELIVERED_STATUSES, Status
from tidings.smpp_server.models import SmppInboundPart, SmppReceipt, SmppReceiptRequest
from tidings.wakeups import SMPP_RECEIPTS, wake_after_commit

SMPP_SOURCE = "smpp"
# smpp_receipt_requests.registered_delivery of a long message: look at its parts.
PER_PART = 0x100


async def remember_receipt_requests(
    session: AsyncSession, message_ids: Sequence[int], registered_delivery: int
) -> None:
    """Keep a registered_delivery other than 1 for these messages (acceptance transaction)."""
    if message_ids:
        await session.execute(
            insert(_table(SmppReceiptRequest)),
            [{"message_id": m, "registered_delivery": registered_delivery} for m in message_ids],
        )


def receipt_wanted(registered_delivery: int, status: Status) -> bool:
    """Whether a final status gets a receipt under a registered_delivery (its low two bits)."""
    wanted = registered_delivery & 0x03
    if wanted == 1:
        return True
    if wanted == 2:
        return status not in DELIVERED_STATUSES
    if wanted == 3:
        return status in DELIVERED_STATUSES
    return False


async def enqueue_smpp_receipts(
    session: AsyncSession, clock: Clock, applied: Sequence[AppliedChange]
) -> int:
    """One pending receipt per final change of an SMPP message, as it asked (in the caller's
    transaction)."""
    finals = [a for a in applied if a.message.source == SMPP_SOURCE and a.change.status.is_final]
    if not finals:
        return 0
    result = await session.execute(
        select(SmppReceiptRequest.message_id, SmppReceiptRequest.registered_delivery).where(
            one_of(session, SmppReceiptRequest.message_id, [a.message.id for a in finals])
        )
    )
    asked: dict[int, int] = {row[0]: row[1] for row in result}
    per_part = [m for m, wanted in asked.items() if wanted == PER_PART]
    parts: dict[int, list[tuple[str, int]]] = {}
    if per_part:
        part_rows = await session.execute(
            select(
                SmppInboundPart.message_id,
                SmppInboundPart.reply_id,
                SmppInboundPart.registered_delivery,
            )
            .where(SmppInboundPart.message_id.in_(per_part))
            .order_by(SmppInboundPart.seqnum)
        )
        for message_id, reply_id, registered_delivery in part_rows:
            parts.setdefault(message_id, []).append((reply_id, registered_delivery))
    now = clock.now()
    rows: list[dict[str, object]] = []
    for a in finals:
        wanted = asked.get(a.message.id, 1)
        asking = parts.get(a.message.id, []) if wanted == PER_PART else [(None, wanted)]
        rows.extend(
            {
                "client_id": a.message.client_id,
                "message_id": a.message.id,
                "reply_id": reply_id,
                "part_id": None,
                "status": a.change.status.value,
                "detail": a.change.detail,
                "done_at": a.change.at,
                "created_at": now,
                "attempts": 0,
                "sent_at": None,
            }
            for reply_id, registered_delivery in asking
            if receipt_wanted(registered_delivery, a.change.status)
        )
    if rows:
        wake_after_commit(session, SMPP_RECEIPTS)
        await session.execute(insert(_table(SmppReceipt)), rows)
    return len(rows)


INBOUND_STATUS = "inbound"  # smpp_receipts.status of an inbound message (MO) for the client


async def enqueue_smpp_inbound(
    session: AsyncSession, now: datetime, messages: Sequence[tuple[int, int, datetime]]
) -> None:
    """Queue inbound messages (client id, inbound id, received at) for clients' receiver
    binds: the receipts' queue, so they wait the same way while the client is not bound."""
    if messages:
        wake_after_commit(session, SMPP_RECEIPTS)
        await session.execute(
            insert(_table(SmppReceipt)),
            [
                {
                    "client_id": client_id,
                    "message_id": None,
                    "reply_id": None,
                    "part_id": None,
                    "inbound_id": inbound_id,
                    "status": INBOUND_STATUS,
                    "detail": None,
                    "done_at": received_at,
                    "created_at": now,
                    "attempts": 0,
                    "sent_at": None,
                }
                for client_id, inbound_id, received_at in messages
            ],
        )


@dataclass(frozen=True, slots=True)
class PendingReceipt:
    id: int
    client_id: int
    message_id: int | None
    reply_id: str | None  # the part's own message_id, when a part asked
    status: str
    detail: str | None
    done_at: datetime
    msisdn: str
    originator: str
    body: str
    parts: int
    time_in: datetime
    # Set for an inbound message: msisdn is its sender, originator the number it was sent to.
    inbound_id: int | None = None


async def pending_receipts(
    session: AsyncSession, client_ids: Sequence[int], exclude: Sequence[int], limit: int
) -> list[PendingReceipt]:
    """The oldest unsent receipts of these clients, with what their text needs.

    Receipts of parts whose message never completed have no message: their text comes from
    the part (a second query, only when there are any).
    """
    if not client_ids:
        return []
    query = (
        select(
            SmppReceipt.id,
            SmppReceipt.client_id,
            SmppReceipt.message_id,
            SmppReceipt.reply_id,
            SmppReceipt.status,
            SmppReceipt.detail,
            SmppReceipt.done_at,
            Message.msisdn,
            Message.originator,
            Message.body,
            Message.parts,
            Message.time_in,
            SmppReceipt.part_id,
            SmppReceipt.inbound_id,
        )
        .outerjoin(Message, Message.id == SmppReceipt.message_id)
        .where(one_of(session, SmppReceipt.client_id, client_ids), SmppReceipt.sent_at.is_(None))
        .order_by(SmppReceipt.id)
        .limit(limit)
    )
    if exclude:
        query = query.where(none_of(session, SmppReceipt.id, exclude))
    rows = (await session.execute(query)).all()
    orphans = [row[12] for row in rows if row[2] is None and row[12] is not None]
    of_parts = await _part_texts(session, orphans) if orphans else {}
    # Inbound messages in the queue: their text by a second query, only when there are
    # any, so the receipts' query keeps its plan (no join to a big table it rarely needs).
    inbound_ids = [row[13] for row in rows if row[13] is not None]
    of_inbound = await _inbound_texts(session, inbound_ids) if inbound_ids else {}
    receipts = []
    for row in rows:
        fields = list(row[:12])
        part_id, inbound_id = row[12], row[13]
        if inbound_id is not None:
            if inbound_id not in of_inbound:
                continue  # pragma: no cover - inbound messages are never deleted
            fields[7:12] = of_inbound[inbound_id]
            receipts.append(replace(PendingReceipt(*fields), inbound_id=inbound_id))
            continue
        if fields[2] is None:
            if part_id not in of_parts:
                continue  # pragma: no cover - a receipt row always names one or the other
            fields[7:12] = of_parts[part_id]
        receipts.append(PendingReceipt(*fields))
    return receipts


async def _inbound_texts(
    session: AsyncSession, inbound_ids: Sequence[int]
) -> dict[int, tuple[str, str, str, int, datetime]]:
    """(sender, number, text, parts, received) of queued inbound messages, by id."""
    rows = await session.execute(
        select(
            InboundMessage.id,
            InboundMessage.sender,
            InboundMessage.recipient,
            InboundMessage.text,
            InboundMessage.parts,
            InboundMessage.received_at,
        ).where(one_of(session, InboundMessage.id, inbound_ids))
    )
    return {row[0]: (row[1], row[2], row[3], row[4], row[5]) for row in rows.tuples()}


async def _part_texts(
    session: AsyncSession, part_ids: Sequence[int]
) -> dict[int, tuple[str, str, str, int, datetime]]:
    """(msisdn, originator, text, parts, received) of parts whose message never completed."""
    rows = await session.execute(
        select(
            SmppInboundPart.id,
            SmppInboundPart.pdu,
            SmppInboundPart.total,
            SmppInboundPart.received_at,
        ).where(SmppInboundPart.id.in_(part_ids))
    )
    found: dict[int, tuple[str, str, str, int, datetime]] = {}
    for part_id, data, total, received_at in rows:
        pdu = decode(data) if data else None
        if isinstance(pdu, SubmitSm | DataSm):
            short = pdu.short_message if isinstance(pdu, SubmitSm) else b""
            text = decode_short_message(short, pdu.data_coding, pdu.esm_class, pdu.tlvs).text
            found[part_id] = (pdu.destination_addr, pdu.source_addr, text, total, received_at)
        else:  # pragma: no cover - failed parts keep their PDU
            found[part_id] = ("", "", "", total, received_at)
    return found


# --- parts of long messages ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPart:
    """An answered part of a long message still waiting for the rest (read at start)."""

    client_id: int
    charset: str
    assembly: str
    seqnum: int
    reply_id: str
    registered_delivery: int
    pdu: bytes
    received_at: datetime


def part_row(
    client_id: int,
    assembly: str,
    seqnum: int,
    total: int,
    reply_id: str,
    registered_delivery: int,
    pdu: bytes | None,
    received_at: datetime,
    message_id: int | None = None,
) -> dict[str, object]:
    return {
        "client_id": client_id,
        "assembly": assembly,
        "seqnum": seqnum,
        "total": total,
        "reply_id": reply_id,
        "registered_delivery": registered_delivery,
        "pdu": pdu,
        "received_at": received_at,
        "message_id": message_id,
        "failed_at": None,
    }


async def store_parts(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        await session.execute(insert(_parts()), list(rows))


async def open_parts(session: AsyncSession) -> list[StoredPart]:
    """Every answered part whose message is neither whole nor given up, oldest first."""
    rows = await session.execute(
        select(
            SmppInboundPart.client_id,
            Client.smpp_charset,
            SmppInboundPart.assembly,
            SmppInboundPart.seqnum,
            SmppInboundPart.reply_id,
            SmppInboundPart.registered_delivery,
            SmppInboundPart.pdu,
            SmppInboundPart.received_at,
        )
        .join(Client, Client.id == SmppInboundPart.client_id)
        .where(SmppInboundPart.message_id.is_(None), SmppInboundPart.failed_at.is_(None))
        .order_by(SmppInboundPart.id)
    )
    return [StoredPart(*row) for row in rows.all() if row[6] is not None]


async def complete_parts(session: AsyncSession, message_id: int, reply_ids: Sequence[str]) -> None:
    """The stored parts are now ``message_id`` (their PDUs are no longer needed)."""
    if reply_ids:
        table = _parts()
        await session.execute(
            update(table).where(_reply_in(table, reply_ids)).values(message_id=message_id, pdu=None)
        )


async def fail_parts(
    session: AsyncSession,
    clock: Clock,
    client_id: int,
    reply_ids: Sequence[str],
    status: Status,
    detail: str,
) -> int:
    """Give up on the parts of a message that cannot complete: a receipt (with ``status``)
    for each that asked for one. Returns how many receipts were written."""
    if not reply_ids:
        return 0
    now = clock.now()
    table = _parts()
    await session.execute(update(table).where(_reply_in(table, reply_ids)).values(failed_at=now))
    rows = await session.execute(
        select(SmppInboundPart.id, SmppInboundPart.reply_id, SmppInboundPart.registered_delivery)
        .where(SmppInboundPart.reply_id.in_(reply_ids))
        .order_by(SmppInboundPart.seqnum)
    )
    receipts = [
        {
            "client_id": client_id,
            "message_id": None,
            "reply_id": reply_id,
            "part_id": part_id,
            "status": status.value,
            "detail": detail,
            "done_at": now,
            "created_at": now,
            "attempts": 0,
            "sent_at": None,
        }
        for part_id, reply_id, registered_delivery in rows
        if receipt_wanted(registered_delivery, status)
    ]
    if receipts:
        await session.execute(insert(_table(SmppReceipt)), receipts)
    return len(receipts)


async def find_part(
    session: AsyncSession, client_id: int, reply_id: str
) -> tuple[int | None, datetime | None] | None:
    """(message id, failed at) of a client's part by the id it was answered with."""
    row = (
        await session.execute(
            select(SmppInboundPart.message_id, SmppInboundPart.failed_at).where(
                SmppInboundPart.reply_id == reply_id, SmppInboundPart.client_id == client_id
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


def _reply_in(table: Table, reply_ids: Sequence[str]) -> ColumnElement[bool]:
    return table.c.reply_id.in_(list(reply_ids))


def _parts() -> Table:
    return cast(Table, SmppInboundPart.__table__)


async def mark_sent(session: AsyncSession, ids: Sequence[int], at: datetime) -> None:
    if ids:
        table = _table(SmppReceipt)
        await session.execute(
            update(table).where(one_of(session, table.c.id, ids)).values(sent_at=at)
        )


def _table(model: type[SmppReceipt | SmppReceiptRequest]) -> Table:
    # Core statements: the ORM's bulk paths cost more per row and add nothing here.
    return cast(Table, model.__table__)
