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
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, any_, func, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tidings.db.partitions import PARTITION_KEYS


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
    table = getattr(element, "table", None)
    name = getattr(table, "name", None)
    return name is not None and PARTITION_KEYS.get(name) == getattr(element, "name", None)


def one_of_selected(
    session: AsyncSession,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    selected: Select[Any],
) -> ColumnElement[bool]:
    """``column = ANY(ARRAY(subquery))`` on PostgreSQL, ``column IN (subquery)`` elsewhere.

    A claim's ``UPDATE … WHERE id IN (SELECT … LIMIT $n FOR UPDATE SKIP LOCKED)`` is a join
    to the planner, and a generic plan cannot know $n: it guesses a tenth of the table and
    may hash-join against a sequential scan of it. ``ARRAY(subquery)`` runs the subquery once
    (an InitPlan) and the UPDATE looks its few ids up by primary key, whatever the estimate.
    """
    if is_postgres(session):
        return column == any_(func.array(selected.scalar_subquery(), type_=ARRAY(column.type)))
    return column.in_(selected.scalar_subquery())
