"""The shared throughput bookings of rate-limited suppliers (`supplier_rate_buckets`).

Each call is one statement, meant to run in a transaction of its own: the row's lock (on
PostgreSQL; SQLite's BEGIN IMMEDIATE write lock) is held only for that statement and the
commit, so lanes in other processes queue on it for microseconds, not for a batch.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Table, bindparam, case, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.upsert import insert_for
from tidings.delivery.models import SupplierRateBucket


class RateBucketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def book(self, supplier_id: int, now_us: int, span_us: int) -> int:
        """Book `span_us` of the supplier's time after what is booked already (or after
        `now_us`, if that is later: time nobody used is not banked beyond it). Returns the
        new end of the bookings; the span just booked ends there.

        One upsert: the first booking of a supplier creates its row, and concurrent bookers
        queue on the row's lock, each seeing the others' committed bookings.
        """
        buckets = cast(Table, SupplierRateBucket.__table__)
        now = bindparam("now_us", now_us, type_=BigInteger)
        span = bindparam("span_us", span_us, type_=BigInteger)
        insert = insert_for(self.session)
        first = insert(buckets).values(supplier_id=supplier_id, booked_until_us=now + span)
        booked = buckets.c.booked_until_us
        statement = first.on_conflict_do_update(
            index_elements=[buckets.c.supplier_id],
            set_={"booked_until_us": case((booked > now, booked + span), else_=now + span)},
        ).returning(booked)
        return int((await self.session.execute(statement)).scalar_one())

    async def give_back(self, supplier_id: int, span_us: int) -> None:
        """Return booked time that will not be used (the batch did not go)."""
        buckets = cast(Table, SupplierRateBucket.__table__)
        await self.session.execute(
            update(buckets)
            .where(buckets.c.supplier_id == supplier_id)
            .values(
                booked_until_us=buckets.c.booked_until_us
                - bindparam("span_us", span_us, type_=BigInteger)
            )
        )
