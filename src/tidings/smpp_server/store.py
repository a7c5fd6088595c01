"""The receipts table: written in the status-change transaction, read by the server.

Only messages that came in over SMPP (``source == "smpp"``) and only final statuses make a
receipt (SMPP clients ask for the final outcome: registered_delivery 1 is near universal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.clock import Clock
from tidings.messages.changes import AppliedChange
from tidings.messages.models import Message
from tidings.smpp_server.models import SmppReceipt

SMPP_SOURCE = "smpp"


async def enqueue_smpp_receipts(
    session: AsyncSession, clock: Clock, applied: Sequence[AppliedChange]
) -> int:
    """One pending receipt per final change of an SMPP message (in the caller's transaction)."""
    rows = [
        {
            "client_id": a.message.client_id,
            "message_id": a.message.id,
            "status": a.change.status.value,
            "detail": a.change.detail,
            "done_at": a.change.at,
            "created_at": clock.now(),
            "attempts": 0,
            "sent_at": None,
        }
        for a in applied
        if a.message.source == SMPP_SOURCE and a.change.status.is_final
    ]
    if rows:
        await session.execute(insert(SmppReceipt), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class PendingReceipt:
    id: int
    client_id: int
    message_id: int
    status: str
    detail: str | None
    done_at: datetime
    msisdn: str
    originator: str
    body: str
    parts: int
    time_in: datetime


async def pending_receipts(
    session: AsyncSession, client_ids: Sequence[int], exclude: Sequence[int], limit: int
) -> list[PendingReceipt]:
    """The oldest unsent receipts of these clients, with what their text needs."""
    if not client_ids:
        return []
    query = (
        select(
            SmppReceipt.id,
            SmppReceipt.client_id,
            SmppReceipt.message_id,
            SmppReceipt.status,
            SmppReceipt.detail,
            SmppReceipt.done_at,
            Message.msisdn,
            Message.originator,
            Message.body,
            Message.parts,
            Message.time_in,
        )
        .join(Message, Message.id == SmppReceipt.message_id)
        .where(SmppReceipt.client_id.in_(client_ids), SmppReceipt.sent_at.is_(None))
        .order_by(SmppReceipt.id)
        .limit(limit)
    )
    if exclude:
        query = query.where(SmppReceipt.id.not_in(exclude))
    return [PendingReceipt(*row) for row in (await session.execute(query)).all()]


async def mark_sent(session: AsyncSession, ids: Sequence[int], at: datetime) -> None:
    if ids:
        await session.execute(update(SmppReceipt).where(SmppReceipt.id.in_(ids)).values(sent_at=at))
