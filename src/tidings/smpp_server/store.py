"""The receipts table: written in the status-change transaction, read by the server.

Only messages that came in over SMPP (``source == "smpp"``) and only final statuses make a
receipt, and only as the submit_sm's ``registered_delivery`` asked: 1 (near universal, no row
kept) for any final status, 2 for failures, 3 for deliveries, 0 none (``smpp_receipt_requests``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.clock import Clock
from tidings.db.arrays import none_of, one_of
from tidings.messages.changes import AppliedChange
from tidings.messages.models import Message
from tidings.messages.status import DELIVERED_STATUSES, Status
from tidings.smpp_server.models import SmppReceipt, SmppReceiptRequest
from tidings.wakeups import SMPP_RECEIPTS, wake_after_commit

SMPP_SOURCE = "smpp"


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
        for a in finals
        if receipt_wanted(asked.get(a.message.id, 1), a.change.status)
    ]
    if rows:
        wake_after_commit(session, SMPP_RECEIPTS)
        await session.execute(insert(_table(SmppReceipt)), rows)
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
        .where(one_of(session, SmppReceipt.client_id, client_ids), SmppReceipt.sent_at.is_(None))
        .order_by(SmppReceipt.id)
        .limit(limit)
    )
    if exclude:
        query = query.where(none_of(session, SmppReceipt.id, exclude))
    return [PendingReceipt(*row) for row in (await session.execute(query)).all()]


async def mark_sent(session: AsyncSession, ids: Sequence[int], at: datetime) -> None:
    if ids:
        table = _table(SmppReceipt)
        await session.execute(
            update(table).where(one_of(session, table.c.id, ids)).values(sent_at=at)
        )


def _table(model: type[SmppReceipt | SmppReceiptRequest]) -> Table:
    # Core statements: the ORM's bulk paths cost more per row and add nothing here.
    return cast(Table, model.__table__)
