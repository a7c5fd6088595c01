"""The SQL of retention: the shared schedule row, and SQLite's batch deletes (PostgreSQL drops
whole partitions: db/partitions.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.ids import first_id_at
from tidings.db.upsert import insert_for
from tidings.delivery.models import MessagePart, Receipt
from tidings.messages.models import Message, MessageEvent
from tidings.messages.status import FINAL_STATUSES
from tidings.retention.models import MaintenanceRun
from tidings.smpp_server.models import SmppInboundPart, SmppReceipt, SmppReceiptRequest
from tidings.viber.models import ViberContent
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

FINAL = sorted(FINAL_STATUSES)


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def last_run(self, name: str) -> datetime | None:
        found: datetime | None = await self.session.scalar(
            select(MaintenanceRun.last_run_at).where(MaintenanceRun.name == name)
        )
        return found

    async def claim(self, name: str, now: datetime, due_before: datetime) -> bool:
        """Take the job for this run if it last ran before `due_before`: True for the one
        worker that does. SKIP LOCKED: a worker running it right now is not waited for."""
        # The job's row, made by whichever worker comes first (two at once: one row).
        await self.session.execute(
            insert_for(self.session)(MaintenanceRun)
            .values(name=name, last_run_at=None)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        due = (
            select(MaintenanceRun.name)
            .where(
                MaintenanceRun.name == name,
                (MaintenanceRun.last_run_at.is_(None)) | (MaintenanceRun.last_run_at < due_before),
            )
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(MaintenanceRun)
            .where(MaintenanceRun.name == due)
            .values(last_run_at=now)
            .returning(MaintenanceRun.name)
        )
        return result.first() is not None

    async def set_last_run(self, name: str, at: datetime | None) -> None:
        await self.session.execute(
            update(MaintenanceRun).where(MaintenanceRun.name == name).values(last_run_at=at)
        )

    async def expired_closed(self, cutoff: datetime, limit: int) -> list[int]:
        """Up to `limit` messages taken before `cutoff` with nothing left to do: final, no
        webhook or SMPP receipt still to send, no SMS fallback still open (SQLite)."""
        child = Message.__table__.alias("child")
        result = await self.session.execute(
            select(Message.id)
            .where(
                Message.id < first_id_at(cutoff),
                Message.time_in < cutoff,
                Message.status.in_(FINAL),
                ~exists().where(
                    WebhookDelivery.message_id == Message.id, WebhookDelivery.state == "pending"
                ),
                ~exists().where(
                    SmppReceipt.message_id == Message.id, SmppReceipt.sent_at.is_(None)
                ),
                ~exists().where(child.c.parent_id == Message.id, child.c.status.not_in(FINAL)),
            )
            .order_by(Message.id)
            .limit(limit)
        )
        return [row[0] for row in result]

    async def delete_messages(self, ids: Sequence[int]) -> None:
        """Delete these messages and everything that hangs off them, children first (SQLite
        enforces the foreign keys)."""
        wanted = list(ids)
        deliveries = select(WebhookDelivery.id).where(WebhookDelivery.message_id.in_(wanted))
        parts = select(SmppInboundPart.id).where(SmppInboundPart.message_id.in_(wanted))
        session = self.session
        await session.execute(
            delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries))
        )
        await session.execute(delete(WebhookDelivery).where(WebhookDelivery.message_id.in_(wanted)))
        await session.execute(
            delete(SmppReceipt).where(
                SmppReceipt.message_id.in_(wanted) | SmppReceipt.part_id.in_(parts)
            )
        )
        for table, column in (
            (SmppInboundPart, SmppInboundPart.message_id),
            (SmppReceiptRequest, SmppReceiptRequest.message_id),
            (MessageEvent, MessageEvent.message_id),
            (MessagePart, MessagePart.message_id),
            (Receipt, Receipt.message_id),
            (ViberContent, ViberContent.message_id),
        ):
            await session.execute(delete(table).where(column.in_(wanted)))
        await session.execute(
            update(ViberContent)
            .where(ViberContent.fallback_id.in_(wanted))
            .values(fallback_id=None)
        )
        # A fallback SMS pruned in a later batch than its Viber message points at nothing.
        await session.execute(
            update(Message).where(Message.parent_id.in_(wanted)).values(parent_id=None)
        )
        await session.execute(delete(Message).where(Message.id.in_(wanted)))
