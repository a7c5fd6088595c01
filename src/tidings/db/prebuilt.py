"""Hot-path statements, built once per dialect instead of once per call.

Building a SQLAlchemy statement is not free: `update(table).where(…).values(…)` creates the
expression objects, coerces every argument and, when executed, walks the whole tree to make
its cache key before the compiled form can be found. Measured on SQLite (bench: a one-row
UPDATE by primary key), the statement built per call cost 150 µs of CPU and the same statement
built once, with its values as `bindparam`s, 45 µs — most of it the execution itself. The
end-to-end path runs about four statements per message, so this is a tenth of what a message
costs (docs/performance.md, "Statements built once").

So the hot repositories build each statement in a function of the dialect's name, cached
with `functools.cache`, and pass the values as parameters. They use the tables' Core columns
(`Message.__table__.c`), not the ORM attributes: an ORM-enabled statement goes through the
ORM's compile state on every execution even when it returns plain rows.

`one_of_param` is `arrays.one_of` with the values as a parameter: on PostgreSQL one array
(`= ANY(:name)`, plus the range of a partition key for pruning), elsewhere an expanding IN.
`one_of_values` makes the parameters it needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, any_, bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.partitions import PARTITION_KEYS

POSTGRESQL = "postgresql"


def dialect_of(session: AsyncSession) -> str:
    """The name of the session's dialect ("sqlite", "postgresql"): the key of a prebuilt
    statement."""
    return session.get_bind().dialect.name


def one_of_param(dialect: str, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column` is one of the values of parameter `name` (give them with `one_of_values`)."""
    if dialect != POSTGRESQL:
        return column.in_(bindparam(name, expanding=True))
    matches = column == any_(bindparam(name, type_=ARRAY(column.type)))
    if is_partition_key(column):
        # A generic plan cannot prune partitions by an array, but it prunes by a range.
        return and_(
            matches, column.between(bindparam(f"{name}_least"), bindparam(f"{name}_greatest"))
        )
    return matches


def one_of_values(name: str, values: Iterable[Any]) -> dict[str, Any]:
    """The parameters of `one_of_param(…, name)` for these values (the range ones are
    ignored where the statement has none)."""
    wanted = list(values)
    if not wanted:
        # An empty array matches nothing; the range must still be a valid one.
        return {name: wanted, f"{name}_least": 0, f"{name}_greatest": 0}
    return {name: wanted, f"{name}_least": min(wanted), f"{name}_greatest": max(wanted)}


def one_of_selected(
    dialect: str, column: ColumnElement[Any], selected: Select[Any]
) -> ColumnElement[bool]:
    """``column = ANY(ARRAY(subquery))`` on PostgreSQL, ``column IN (subquery)`` elsewhere.

    A claim's ``UPDATE … WHERE id IN (SELECT … LIMIT $n FOR UPDATE SKIP LOCKED)`` is a join
    to the planner, and a generic plan cannot know $n: it guesses a tenth of the table and
    may hash-join against a sequential scan of it. ``ARRAY(subquery)`` runs the subquery once
    (an InitPlan) and the UPDATE looks its few ids up by primary key, whatever the estimate.
    """
    if dialect == POSTGRESQL:
        return column == any_(func.array(selected.scalar_subquery(), type_=ARRAY(column.type)))
    return column.in_(selected.scalar_subquery())


def is_partition_key(column: ColumnElement[Any]) -> bool:
    """Whether `column` is the partition key of a partitioned table (db/partitions.py)."""
    table = getattr(column, "table", None)
    name = getattr(table, "name", None)
    return name is not None and PARTITION_KEYS.get(name) == getattr(column, "name", None)
