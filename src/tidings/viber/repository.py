from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.messages.models import Message, status_predicate
from tidings.viber.models import ViberContent, ViberSender

VIBER = "viber"


class ViberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_contents(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(cast(Table, ViberContent.__table__)), list(rows))

    async def contents(self, message_ids: Sequence[int]) -> dict[int, ViberContent]:
        if not message_ids:
            return {}
        result = await self.session.execute(
            select(ViberContent).where(ViberContent.message_id.in_(list(message_ids)))
        )
        return {row.message_id: row for row in result.scalars()}

    async def content(self, message_id: int) -> ViberContent | None:
        return await self.session.get(ViberContent, message_id)

    async def awaiting_fallback(self, message_ids: Sequence[int]) -> list[ViberContent]:
        """Contents of these messages that carry an SMS alternative not yet sent."""
        result = await self.session.execute(
            select(ViberContent)
            .where(
                ViberContent.message_id.in_(list(message_ids)),
                ViberContent.sms_text.is_not(None),
                ViberContent.fallback_id.is_(None),
            )
            .order_by(ViberContent.message_id)
        )
        return list(result.scalars())

    async def link_fallbacks(self, links: Sequence[tuple[int, int]]) -> None:
        """(viber message id, fallback SMS id) pairs."""
        if not links:
            return
        table = cast(Table, ViberContent.__table__)
        await self.session.execute(
            update(table)
            .where(table.c.message_id == bindparam("viber_id"))
            .values(fallback_id=bindparam("sms_id")),
            [{"viber_id": viber_id, "sms_id": sms_id} for viber_id, sms_id in links],
        )

    async def in_flight_past_ttl(
        self, statuses: Iterable[str], now: datetime, limit: int
    ) -> list[int]:
        """Viber messages handed over but without a final report when their TTL ended."""
        result = await self.session.execute(
            select(Message.id)
            .where(
                text(status_predicate(frozenset(statuses))),  # its partial index's words
                Message.expires_at < now,
                Message.channel == VIBER,
            )
            .order_by(Message.expires_at)
            .limit(limit)
        )
        return [row[0] for row in result]

    async def fallback_of(self, message_id: int) -> Message | None:
        result = await self.session.execute(
            select(Message)
            .join(ViberContent, ViberContent.fallback_id == Message.id)
            .where(ViberContent.message_id == message_id)
        )
        return result.scalar_one_or_none()


class SenderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, sender: ViberSender) -> ViberSender:
        self.session.add(sender)
        await self.session.flush()
        return sender

    async def get(self, client_id: int, alpha_name: str) -> ViberSender | None:
        result = await self.session.execute(
            select(ViberSender).where(
                ViberSender.client_id == client_id, ViberSender.alpha_name == alpha_name
            )
        )
        return result.scalar_one_or_none()

    async def registered(self, client_id: int, alpha_names: Iterable[str]) -> set[str]:
        result = await self.session.execute(
            select(ViberSender.alpha_name).where(
                ViberSender.client_id == client_id, ViberSender.alpha_name.in_(list(alpha_names))
            )
        )
        return {row[0] for row in result}

    async def list(self, client_id: int) -> Sequence[ViberSender]:
        result = await self.session.execute(
            select(ViberSender)
            .where(ViberSender.client_id == client_id)
            .order_by(ViberSender.alpha_name)
        )
        return result.scalars().all()

    async def remove(self, client_id: int, alpha_name: str) -> bool:
        result = await self.session.execute(
            delete(ViberSender).where(
                ViberSender.client_id == client_id, ViberSender.alpha_name == alpha_name
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
