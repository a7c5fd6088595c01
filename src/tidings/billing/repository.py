from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import cast

from sqlalchemy import Insert, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.billing.models import LedgerEntry, Price


class PriceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_tariff(self, type_: str, tariff: int) -> Sequence[Price]:
        result = await self.session.execute(
            select(Price).where(Price.type == type_, Price.tariff == tariff).order_by(Price.country)
        )
        return result.scalars().all()

    async def all(self) -> Sequence[Price]:
        result = await self.session.execute(select(Price))
        return result.scalars().all()

    async def replace(self, rows: Sequence[dict[str, object]]) -> None:
        """Upsert by (type, tariff, country): delete the keys given, insert the new rows."""
        for row in rows:
            await self.session.execute(
                delete(Price).where(
                    Price.type == row["type"],
                    Price.tariff == row["tariff"],
                    Price.country == row["country"],
                )
            )
        if rows:
            await self.session.execute(insert(Price), list(rows))


@cache
def _insert_entries() -> Insert:
    return insert(cast(Table, LedgerEntry.__table__))


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(
        self, entries: Sequence[tuple[int, Decimal, str, str | None]], at: datetime
    ) -> None:
        """Entries are (client_id, amount, reason, reference); negative amounts are charges."""
        if not entries:
            return
        await self.session.execute(
            _insert_entries(),
            [
                {"client_id": c, "amount": a, "reason": r, "reference": ref, "created_at": at}
                for c, a, r, ref in entries
            ],
        )

    async def for_client(self, client_id: int, limit: int = 100) -> Sequence[LedgerEntry]:
        result = await self.session.execute(
            select(LedgerEntry)
            .where(LedgerEntry.client_id == client_id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit)
        )
        return result.scalars().all()
