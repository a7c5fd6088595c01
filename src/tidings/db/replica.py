"""A read replica (`TIDINGS_DATABASE_REPLICA_URL`): where reads that may be a moment behind go.

Only what is named goes there, through a second sessionmaker handed to it (`AppState.reads`,
the export worker's reader engine, the console's page reads): DR queries, status reads,
console pages and the export stream. Writes, claims, leases and anything that must see what
this process just wrote stay on the primary (`AppState.sessions`). A status read that finds
nothing on the replica asks the primary once more (`read_with_fallback`): the message may
have been created a moment ago and not be on the replica yet (read-your-writes).
Without a replica, `reads` is the primary's sessionmaker itself and nothing changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tidings.config import normalize_database_url
from tidings.db.engine import create_engine
from tidings.errors import NotFound

T = TypeVar("T")


def create_replica_engine(url: str) -> AsyncEngine:
    """The replica's engine: a pool like the primary's on PostgreSQL; on SQLite (tests, or a
    copy of the file) a read-only connection that never takes the write lock."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        from tidings.exports.repository import create_reader_engine

        return create_reader_engine(url)
    return create_engine(url)


async def read_with_fallback(
    reads: async_sessionmaker[AsyncSession],
    primary: async_sessionmaker[AsyncSession],
    read: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """`read` on the replica; when it finds nothing there, on the primary (where the row may
    already be: a replica lags by up to its replay delay)."""
    try:
        async with reads() as session:
            return await read(session)
    except NotFound:
        if reads is primary:
            raise
    async with primary() as session:
        return await read(session)
