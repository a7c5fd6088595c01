"""The status-change path's statements (MessageRepository's hot ones), built once per dialect.

Every message goes through these on its way (claimed, sent, reported): built per call, a
statement costs more CPU than running it does (db/prebuilt.py). They are over the table's
Core columns and return plain rows.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import Insert, Select, Table, Update, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from tidings.db.prebuilt import dialect_of, one_of_param, one_of_values
from tidings.messages.changes import RECORD_FIELDS
from tidings.messages.models import Message, MessageEvent

__all__ = [
    "column_update",
    "column_update_many",
    "dialect_of",
    "event_insert",
    "lock_for_update",
    "one_of_values",
    "references",
]


_MESSAGES = cast(Table, Message.__table__)


@functools.cache
def event_insert(dialect: str) -> Insert:
    return insert(cast(Table, MessageEvent.__table__))


@functools.cache
def column_update(dialect: str, columns: tuple[str, ...]) -> Update:
    """One per set of columns the status-change path writes: a handful (sorted names)."""
    t = _MESSAGES
    return (
        update(t)
        .where(t.c.id == bindparam("_id"))
        .values({column: bindparam(column) for column in columns})
    )


@functools.cache
def column_update_many(dialect: str, columns: tuple[str, ...]) -> Update:
    """PostgreSQL: `column_update` for many messages as one statement, the values as arrays
    (`UPDATE … FROM unnest(:_id, :status, …)`). An executemany binds each row on its own,
    and on a partitioned table each bind is planned afresh (a custom plan prunes to one
    week; the generic one looks costlier for it): about 0.2 ms of the server's time per row,
    more than the update itself. One statement is planned once for the batch; the id range
    lets that plan prune the weeks the batch does not touch."""
    t = _MESSAGES
    ids = bindparam("_ids", type_=ARRAY(t.c.id.type))
    arrays = [bindparam(column, type_=ARRAY(t.c[column].type)) for column in columns]
    rows = func.unnest(ids, *arrays).table_valued("_id", *columns).render_derived(name="u")
    return (
        update(t)
        .where(
            t.c.id == rows.c._id,
            t.c.id.between(bindparam("_least"), bindparam("_greatest")),
        )
        .values({column: rows.c[column] for column in columns})
    )


@functools.cache
def references(dialect: str) -> Select[Any]:
    t = _MESSAGES
    return select(t.c.id, t.c.reference).where(one_of_param(dialect, t.c.id, "b_ids"))


@functools.cache
def lock_for_update(dialect: str) -> Select[Any]:
    t = _MESSAGES
    columns = [t.c[name] for name in RECORD_FIELDS]  # positional: the record's order
    return select(*columns).where(one_of_param(dialect, t.c.id, "b_ids")).with_for_update()
