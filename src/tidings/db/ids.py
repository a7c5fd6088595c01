"""Allocating primary keys up front, so bulk inserts need no RETURNING.

SQLAlchemy can only batch `INSERT … RETURNING` in parameter order on some drivers; on SQLite
it falls back to one statement per row. Taking the ids first and inserting with explicit ids
keeps a 1,000-row insert one executemany on every database.

Message ids (and task ids, drawn from the same numbers) are time-ordered: the seconds since
ID_EPOCH shifted left by SEQUENCE_BITS, or'ed with the low bits of a sequence. So the ids of a
week form a range known in advance, and PostgreSQL partitions messages by that range
(db/partitions.py): a look-up by id reads one partition. Two ids collide only if 2^21 ids
are taken within one second (or the database clock steps back and as many are taken again);
the primary key would refuse the second. They stay below 2^53 until 2156, so JavaScript
clients read them exactly. On PostgreSQL the database clock stamps them (one clock for every
host); on SQLite, the one host's clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Integer, Select, Table, TextClause, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

ID_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = int(ID_EPOCH.timestamp())
SEQUENCE_BITS = 21
# The largest message or task id there can be: JavaScript's largest exact integer. Other
# tables' ids are still 32-bit columns (MAX_ROW_ID).
MAX_ID = 2**53 - 1
MAX_ROW_ID = 2**31 - 1
# The tables whose ids are time-ordered (their sequence's numbers feed the low bits).
TIME_ORDERED = frozenset({"messages"})


def first_id_at(moment: datetime) -> int:
    """The smallest time-ordered id taken at `moment` or later (a partition bound)."""
    seconds = int(moment.timestamp()) - _EPOCH_SECONDS
    return max(seconds, 0) << SEQUENCE_BITS


def time_of_id(id_: int) -> datetime:
    """When a time-ordered id was taken, to the second."""
    return datetime.fromtimestamp((id_ >> SEQUENCE_BITS) + _EPOCH_SECONDS, UTC)


async def allocate_ids(
    session: AsyncSession, table: Table, count: int, *, shared_with: Sequence[Table] = ()
) -> list[int]:
    """`count` new ids of `table`. Tables in `shared_with` draw from the same numbers (on
    PostgreSQL `table`'s sequence; on SQLite past the largest id of them all), so an id is
    never both a row of `table` and one of theirs (message and task ids, docs/api.md)."""
    if count <= 0:
        return []
    time_ordered = table.name in TIME_ORDERED
    if session.bind.dialect.name == "postgresql":
        result = await session.execute(
            _next_values(time_ordered), {"table": table.name, "n": count}
        )
        return [row[0] for row in result]
    # SQLite: the transaction began with BEGIN IMMEDIATE and holds the write lock, so no other
    # writer can take these ids between this read and our insert.
    found = await session.scalar(_largest_id((table, *shared_with)))
    start = int(found or 0) + 1
    if time_ordered:
        start = max(start, first_id_at(datetime.fromtimestamp(time.time(), UTC)))
    return list(range(start, start + count))


def next_ids_sql(time_ordered: bool) -> str:
    """PostgreSQL: the query of `:n` new ids of table `:table`, one per row (a part of a
    larger statement's text, as in messages/admission_repository.py, or one of its own)."""
    # tidings_time_id: migration 0017, the same formula as first_id_at in SQL.
    function = "tidings_time_id" if time_ordered else "nextval"
    return (
        f"SELECT {function}(pg_get_serial_sequence(:table, 'id')::regclass) "
        "FROM generate_series(1, :n)"
    )


@cache
def _next_values(time_ordered: bool) -> TextClause:
    return text(next_ids_sql(time_ordered)).bindparams(bindparam("n", type_=Integer))


@cache
def _largest_id(tables: tuple[Table, ...]) -> Select[tuple[int]]:
    """The largest id of any of these tables (0 if all are empty), in one statement."""
    largest = [select(func.coalesce(func.max(t.c.id), 0)).scalar_subquery() for t in tables]
    return select(func.max(*largest) if len(largest) > 1 else largest[0])


def parse_id(text: str, limit: int = MAX_ID) -> int | None:
    """An id as a client or an operator typed it: ASCII digits within the column's range
    (`MAX_ID` for message and task ids, `MAX_ROW_ID` for 32-bit ones), else None — which the
    APIs answer as "not found" or as an invalid parameter, never as a database error."""
    if text.isascii() and text.isdigit() and len(text) <= 16 and int(text) <= limit:
        return int(text)
    return None
