"""Allocating primary keys up front, so bulk inserts need no RETURNING.

SQLAlchemy can only batch `INSERT … RETURNING` in parameter order on some drivers; on SQLite
it falls back to one statement per row. Taking the ids first and inserting with explicit ids
keeps a 1,000-row insert one executemany on every database.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession


async def allocate_ids(
    session: AsyncSession, table: Table, count: int, *, shared_with: Sequence[Table] = ()
) -> list[int]:
    """`count` new ids of `table`. Tables in `shared_with` draw from the same numbers (on
    PostgreSQL `table`'s sequence; on SQLite past the largest id of them all), so an id is
    never both a row of `table` and one of theirs (message and task ids, docs/api.md)."""
    if count <= 0:
        return []
    if session.bind.dialect.name == "postgresql":
        result = await session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        )
        return [row[0] for row in result]
    # SQLite: the transaction began with BEGIN IMMEDIATE and holds the write lock, so no other
    # writer can take these ids between this read and our insert.
    last = 0
    for each in (table, *shared_with):
        found = await session.scalar(select(func.coalesce(func.max(each.c.id), 0)))
        last = max(last, int(found or 0))
    start = last + 1
    return list(range(start, start + count))
