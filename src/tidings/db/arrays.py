"""Look-ups of many values at once that keep one statement and one plan on PostgreSQL.

``column IN (:a, :b, …)`` is a different statement for every number of values: asyncpg
prepares each one, and after five executions PostgreSQL caches a generic plan for it, chosen
for whatever the table looked like then (docs/architecture.md, "PostgreSQL without
statistics"). ``column = ANY(:values)`` with one array parameter is one statement whatever
the count, and its generic plan assumes a handful of values (an index look-up), not a share
of the table. SQLite has no arrays and no plan cache across statements: IN stays there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, and_, any_, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tidings.db import prebuilt
from tidings.db.prebuilt import dialect_of


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def one_of(
    session: AsyncSession,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Iterable[Any],
) -> ColumnElement[bool]:
    """``column = ANY(:array)`` on PostgreSQL, ``column IN (…)`` elsewhere.

    On the partition key of a partitioned table (a message id: db/partitions.py) PostgreSQL
    also gets ``column BETWEEN :least AND :greatest``: a generic plan cannot prune partitions
    by an array parameter, but it prunes by a range when it starts, so a batch of ids (taken
    within moments of each other) reads the partitions of its own weeks, not all of them."""
    wanted = list(values)
    if not is_postgres(session):
        return column.in_(wanted)
    matches = column == any_(literal(wanted, ARRAY(column.type)))
    if wanted and _is_partition_key(column):
        return and_(matches, column.between(min(wanted), max(wanted)))
    return matches


def none_of(
    session: AsyncSession,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Iterable[Any],
) -> ColumnElement[bool]:
    """``NOT (column = ANY(:array))`` on PostgreSQL, ``NOT (column IN (…))`` elsewhere."""
    return ~one_of(session, column, values)


def _is_partition_key(column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> bool:
    element = column.__clause_element__() if hasattr(column, "__clause_element__") else column
    return prebuilt.is_partition_key(cast(ColumnElement[Any], element))


def one_of_selected(
    session: AsyncSession,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    selected: Select[Any],
) -> ColumnElement[bool]:
    """``column = ANY(ARRAY(subquery))`` on PostgreSQL, ``column IN (subquery)`` elsewhere
    (`prebuilt.one_of_selected`, which says why)."""
    element = column.__clause_element__() if hasattr(column, "__clause_element__") else column
    return prebuilt.one_of_selected(
        dialect_of(session), cast(ColumnElement[Any], element), selected
    )
