"""Engines and sessions. The caller (a request, a worker step) owns each transaction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool

from tidings.config import normalize_database_url
from tidings.db.sqlite_driver import inline_statements, one_trip_dbapi

__all__ = [
    "create_engine",
    "create_sessionmaker",
    "inline_statements",
    "one_statement",
    "transaction",
]
from tidings.wakeups import Wakeups, waking_sessionmaker_options


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, echo=echo)
    engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=10)
    _ping_after_idle(engine)
    return engine


# A pooled PostgreSQL connection unused for this long is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping`, but only for connections that sat unused a while.

    The pre-ping finds connections a database restart or an idle timeout killed, so that a
    request gets a live one rather than an error. asyncpg's ping is three round trips (BEGIN,
    an empty query, ROLLBACK), and `pool_pre_ping` pays them on every checkout: on the
    end-to-end benchmark, an accept round's eight round trips became eleven. A connection
    given back a moment ago is as alive as one just pinged, so only one idle for over
    `PING_AFTER_IDLE_SECONDS` is pinged; a dead one is dropped and the pool connects again
    (SQLAlchemy's pattern for custom pessimistic checks: raise DisconnectionError)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["tidings_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("tidings_idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("the pooled connection is dead") from error


def _create_sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    # SQLite has one writer. One pooled connection makes the pool's fair asyncio queue do the
    # serialising, instead of SQLite's sleep-and-retry busy handler (which adds up to 100 ms
    # of latency per collision). BEGIN IMMEDIATE takes the write lock up front so that a
    # read-then-write transaction never dies on a lock upgrade when another process (the CLI
    # while `serve` runs) writes too.
    engine = create_async_engine(
        url,
        echo=echo,
        module=one_trip_dbapi(),  # one hand-over to SQLite's thread per statement
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",  # durable across process crashes in WAL mode
            "PRAGMA busy_timeout=10000",  # as sqlite_driver restores it after an inline BEGIN
            "PRAGMA foreign_keys=ON",
            # Pages of the database file are read from the OS's mapping, not copied into the
            # connection's cache: when another process (`serve --processes 2`, the CLI) has
            # written, SQLite drops that whole cache at the next transaction, and re-reading
            # it by copies cost 0.7 ms of CPU per message on the end-to-end benchmark.
            # (Writes still go through write(): a crash cannot tear a page.)
            "PRAGMA mmap_size=1073741824",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_sessionmaker(
    engine: AsyncEngine, wakeups: Wakeups | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of `engine`; with `wakeups`, their commits wake the loops whose work they
    created (tidings/wakeups.py)."""
    options = {} if wakeups is None else waking_sessionmaker_options(wakeups)
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, **options)


def dialect_name(sessions: async_sessionmaker[AsyncSession]) -> str:
    """The dialect ("postgresql", "sqlite") of the engine a session maker is bound to."""
    bind = sessions.kw.get("bind")
    return bind.dialect.name if bind is not None else ""


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any exception."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def one_statement(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work that is one statement (one executemany counts as one: PostgreSQL runs
    its rows in one implicit transaction), or statements that need no common transaction
    (reads before a write that checks what they read, as the accept round's). On PostgreSQL
    it runs in autocommit, with no BEGIN and COMMIT: one round trip instead of three, and a
    round trip costs both sides a write and a wake-up, more than a small statement does
    (docs/performance.md, "Round trips"). Elsewhere, and for anything longer, `transaction`."""
    async with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            async with session.begin():
                yield session
            return
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
        await session.commit()
