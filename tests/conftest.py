"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (override with TIDINGS_TEST_POSTGRES_URL). When it
is not reachable the PostgreSQL half is skipped, unless TIDINGS_REQUIRE_POSTGRES=1 (as in CI
and `make test`), where that is a failure.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tidings.clock import FrozenClock
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.db.migrate import upgrade
from tidings.db.models import Base

POSTGRES_SERVER = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgres"]


def _postgres_reachable() -> bool:
    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(POSTGRES_SERVER, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards; fails the test when the
    server is required (TIDINGS_REQUIRE_POSTGRES=1) but away, skips it otherwise."""
    if not _postgres_reachable():
        if os.environ.get("TIDINGS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {POSTGRES_SERVER}")
        pytest.skip("PostgreSQL is not reachable")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(POSTGRES_SERVER)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_SERVER.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this test session, migrated once, dropped at the end."""
    with fresh_postgres_database("tidings_test") as url:
        asyncio.run(upgrade(url))
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(upgrade(f"sqlite:///{path}"))
    return path


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "tidings.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    yield url


_CLEANUPS = itertools.count()
# Every this many tests the tables are truncated; in between their rows are deleted.
TRUNCATE_EVERY = 50


def _truncate_postgres(url: str) -> None:
    """Empty every table and restart every sequence between tests.

    TRUNCATE makes new files for every table, index and partition, emptied or not (about
    0.3 s for the schema, 0.6 s since messages and message_events are partitioned), while a
    test leaves a few hundred rows in a few tables: those are deleted (children first, one
    probe says which tables hold rows), and every TRUNCATE_EVERY-th time everything is
    truncated, which also clears the dead rows the deletes leave."""
    tables = [table.name for table in Base.metadata.sorted_tables]
    probe = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT FROM \"{t}\")" for t in tables)
    truncate_all = next(_CLEANUPS) % TRUNCATE_EVERY == 0

    async def clean() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                if truncate_all:
                    names = ", ".join(f'"{t}"' for t in tables)
                    await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                    return
                used = {row[0] for row in await connection.execute(text(probe))}
                for table in reversed(tables):
                    if table in used:
                        await connection.execute(text(f'DELETE FROM "{table}"'))
                await connection.execute(
                    text(
                        "SELECT setval(oid, 1, false) FROM pg_class WHERE relkind = 'S'"
                        " AND relnamespace = current_schema()::regnamespace"
                    )
                )
        finally:
            await engine.dispose()

    asyncio.run(clean())


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
