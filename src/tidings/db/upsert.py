"""`INSERT … ON CONFLICT` for the session's database: PostgreSQL's and SQLite's are two
constructs in SQLAlchemy, with the same `on_conflict_do_nothing` / `on_conflict_do_update`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.arrays import is_postgres

Upsert = Callable[[Any], postgresql.Insert | sqlite.Insert]


def insert_for(session: AsyncSession) -> Upsert:
    """`insert(table)` of the session's dialect, for statements with an ON CONFLICT clause."""
    return postgresql.insert if is_postgres(session) else sqlite.insert
