"""The one-trip aiosqlite adapter (tidings.db.sqlite_driver) behaves as SQLAlchemy's own.

SQLite only: the adapter is SQLite's DBAPI shim; PostgreSQL goes through asyncpg untouched.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.db.engine import create_engine, create_sessionmaker, inline_statements, transaction
from tidings.db.sqlite_driver import OneTripConnection, OneTripCursor

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), unique=True, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_the_engine_uses_the_one_trip_adapter(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        adapted = raw.dbapi_connection
        assert isinstance(adapted, OneTripConnection)
        assert isinstance(adapted.cursor(), OneTripCursor)


async def test_rows_counts_and_ids_come_back(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with transaction(sessions) as session:
        single = await session.execute(insert(things).values(name="one"))
        assert single.inserted_primary_key == (1,)
        many = await session.execute(insert(things), [{"name": "two"}, {"name": "three"}])
        assert many.rowcount == 2
        updated = await session.execute(
            text("UPDATE things SET name = name || '!' WHERE id > :id"), {"id": 1}
        )
        assert updated.rowcount == 2  # type: ignore[attr-defined]
    async with sessions() as session:
        names = (await session.execute(select(things.c.name).order_by(things.c.id))).scalars()
        assert list(names) == ["one", "two!", "three!"]
        empty = await session.execute(select(things.c.id).where(things.c.id > 99))
        assert empty.all() == []


async def test_streamed_results_still_use_a_server_side_cursor(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with transaction(sessions) as session:
        await session.execute(insert(things), [{"name": f"n{i}"} for i in range(250)])
    async with sessions() as session:
        stream = await session.stream(select(things.c.id).order_by(things.c.id))
        seen = [row[0] async for row in stream]
    assert seen == list(range(1, 251))


async def test_errors_are_sqlalchemy_errors_and_roll_back(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with transaction(sessions) as session:
        await session.execute(insert(things).values(name="taken"))
    with pytest.raises(IntegrityError):
        async with transaction(sessions) as session:
            await session.execute(insert(things).values(name="fresh"))
            await session.execute(insert(things).values(name="taken"))
    async with sessions() as session:
        names = (await session.execute(select(things.c.name))).scalars().all()
    assert names == ["taken"]  # "fresh" went with the failed transaction


async def test_a_connection_given_back_mid_transaction_is_rolled_back(
    engine: AsyncEngine,
) -> None:
    """The skipped rollback is only for connections whose transaction already ended."""
    sessions = create_sessionmaker(engine)
    async with sessions() as session:  # BEGIN IMMEDIATE, a write, never committed
        await session.execute(insert(things).values(name="abandoned"))
    async with transaction(sessions) as session:  # the write lock is free again
        await session.execute(insert(things).values(name="kept"))
    async with sessions() as session:
        names = (await session.execute(select(things.c.name))).scalars().all()
    assert names == ["kept"]


async def test_the_held_back_begin_still_takes_the_write_lock_first(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """BEGIN IMMEDIATE goes with the first statement; from then on, until the commit, no
    other connection can write (it would fail at once with timeout 0)."""
    sessions = create_sessionmaker(engine)
    other = sqlite3.connect(tmp_path / "driver.db", timeout=0, isolation_level=None)
    try:
        async with transaction(sessions) as session:
            await session.execute(select(things.c.id))  # a read: BEGIN IMMEDIATE went with it
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("INSERT INTO things (name) VALUES ('elsewhere')")
        other.execute("INSERT INTO things (name) VALUES ('after')")  # committed: free again
    finally:
        other.close()


async def test_a_transaction_without_statements_commits_and_rolls_back(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    async with transaction(sessions):
        pass
    with pytest.raises(RuntimeError):
        async with transaction(sessions):
            raise RuntimeError("nothing ran")
    async with transaction(sessions) as session:
        await session.execute(insert(things).values(name="still fine"))
    async with sessions() as session:
        assert (await session.execute(select(things.c.name))).scalars().all() == ["still fine"]


# --- Inline statements (the hot paths: group commit, lanes, webhook loops) ----------------


def _thread_of_statements(engine: AsyncEngine) -> list[int]:
    """Registers `thread_id()` on each new connection: which thread runs the statement."""
    seen: list[int] = []

    @event.listens_for(engine.sync_engine, "connect")
    def _register(dbapi_connection: Any, _record: Any) -> None:
        raw = dbapi_connection._connection._conn
        raw.create_function("thread_id", 0, lambda: seen.append(threading.get_ident()) or 0)

    return seen


async def test_inline_statements_run_on_the_loop_thread_and_commit(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    seen = _thread_of_statements(engine)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        sessions = create_sessionmaker(engine)
        async with transaction(sessions) as session:
            await session.execute(text("SELECT thread_id()"))
        with inline_statements():
            async with transaction(sessions) as session:
                await session.execute(text("SELECT thread_id()"))
                single = await session.execute(insert(things).values(name="one"))
                assert single.inserted_primary_key == (1,)
                many = await session.execute(insert(things), [{"name": "a"}, {"name": "b"}])
                assert many.rowcount == 2
            with pytest.raises(IntegrityError):
                async with transaction(sessions) as session:
                    await session.execute(insert(things).values(name="fresh"))
                    await session.execute(insert(things).values(name="one"))
        async with sessions() as session:
            names = (await session.execute(select(things.c.name).order_by(things.c.id))).scalars()
            assert list(names) == ["one", "a", "b"]  # committed inline; "fresh" rolled back
    finally:
        await engine.dispose()
    loop_thread = threading.get_ident()
    assert seen[0] != loop_thread  # SQLite's own thread
    assert seen[1] == loop_thread  # inline


async def test_an_inline_begin_on_a_locked_database_waits_off_the_loop(tmp_path: Path) -> None:
    """Another process holds the write lock: the BEGIN must wait (busy timeout) on SQLite's
    thread, while the loop keeps running, and then go through."""
    path = tmp_path / "locked.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    sessions = create_sessionmaker(engine)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO things (name) VALUES ('first')")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.get_running_loop().create_task(tick())
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, other.execute, "COMMIT")
    try:
        with inline_statements():
            async with transaction(sessions) as session:
                await session.execute(insert(things).values(name="second"))
        assert ticks >= 10  # the loop ran while the BEGIN waited for the lock
        async with sessions() as session:
            names = (await session.execute(select(things.c.name).order_by(things.c.id))).scalars()
            assert list(names) == ["first", "second"]
        # The connection's busy timeout is back for the statements that wait on the thread.
        async with engine.connect() as connection:
            timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
        assert timeout == 10_000
    finally:
        ticker.cancel()
        other.close()
        await engine.dispose()


async def test_a_long_executemany_goes_to_the_thread_even_inline(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bulk.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    sessions = create_sessionmaker(engine)
    try:
        with inline_statements():
            async with transaction(sessions) as session:
                rows = [{"name": f"n{i}"} for i in range(2_000)]
                assert (await session.execute(insert(things), rows)).rowcount == 2_000
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(things)) == 2_000
    finally:
        await engine.dispose()
