"""The shared throughput bookings of rate-limited suppliers (`supplier_rate_buckets`).

Each call is one statement, meant to run in a transaction of its own: the row's lock (on
PostgreSQL; SQLite's BEGIN IMMEDIATE write lock) is held only for that statement and the
commit, so lanes in other processes queue on it for microseconds, not for a batch.
"""

from __future__ import annotations

import functools
from typing import cast

from sqlalchemy import BigInteger, Insert, Table, Update, bindparam, case, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.prebuilt import POSTGRESQL, dialect_of
from tidings.delivery.models import SupplierRateBucket

BUCKETS = cast(Table, SupplierRateBucket.__table__)


@functools.cache
def _book(dialect: str) -> Insert:
    # One per dialect (db/prebuilt.py): a rate-limited lane books before every batch.
    insert = postgresql.insert if dialect == POSTGRESQL else sqlite.insert
    now = bindparam("now_us", type_=BigInteger)
    span = bindparam("span_us", type_=BigInteger)
    first = insert(BUCKETS).values(supplier_id=bindparam("b_supplier"), booked_until_us=now + span)
    booked = BUCKETS.c.booked_until_us
    return first.on_conflict_do_update(
        index_elements=[BUCKETS.c.supplier_id],
        set_={"booked_until_us": case((booked > now, booked + span), else_=now + span)},
    ).returning(booked)


@functools.cache
def _give_back(dialect: str) -> Update:
    return (
        update(BUCKETS)
        .where(BUCKETS.c.supplier_id == bindparam("b_supplier"))
        .values(booked_until_us=BUCKETS.c.booked_until_us - bindparam("span_us", type_=BigInteger))
    )


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
        result = await self.session.execute(
            _book(dialect_of(self.session)),
            {"b_supplier": supplier_id, "now_us": now_us, "span_us": span_us},
        )
        return int(result.scalar_one())

    async def give_back(self, supplier_id: int, span_us: int) -> None:
        """Return booked time that will not be used (the batch did not go)."""
        await self.session.execute(
            _give_back(dialect_of(self.session)), {"b_supplier": supplier_id, "span_us": span_us}
        )
