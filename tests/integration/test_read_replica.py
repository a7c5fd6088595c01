"""TIDINGS_DATABASE_REPLICA_URL on each database: which engine serves which query.

The "replica" is a second URL of the same database (so it is never behind) that can only
read, as a hot standby: on PostgreSQL a role with SELECT rights whose transactions are read
only, on SQLite the read-only engine. For read-your-writes, it is an empty migrated
database: a replica that has replayed nothing yet. Every statement is recorded per engine
with SQLAlchemy's cursor events.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import POSTGRES_SERVER
from tests.integration.test_console import PASSWORD
from tests.integration.test_console import _sign_in as sign_in
from tests.integration.test_dr_api import basic
from tests.support import accept_messages, build_world, issue_dr_login
from tidings.api.app import create_app
from tidings.api.state import AppState
from tidings.clock import FrozenClock
from tidings.config import Settings
from tidings.db.engine import transaction
from tidings.db.migrate import upgrade
from tidings.operators.service import create_operator

Sessions = async_sessionmaker[AsyncSession]


class Recorder:
    """The statements each engine ran, lower-cased."""

    def __init__(self) -> None:
        self.statements: dict[str, list[str]] = {"primary": [], "replica": []}

    def watch(self, name: str, engine: AsyncEngine) -> None:
        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            self.statements[name].append(" ".join(statement.lower().split()))

        event.listen(engine.sync_engine, "before_cursor_execute", record)

    def clear(self) -> None:
        for statements in self.statements.values():
            statements.clear()

    def reading(self, name: str, table: str) -> list[str]:
        return [s for s in self.statements[name] if s.startswith("select") and table in s]


@asynccontextmanager
async def gateway(
    database_url: str, replica_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    app: FastAPI = create_app(
        Settings(database_url=database_url, database_replica_url=replica_url, cache_ttl=0),
        with_workers=False,
        clock=clock,
    )
    recorder = Recorder()
    async with app.router.lifespan_context(app):
        state: AppState = app.state.tidings
        assert state.replica is not None and state.reads is not state.sessions
        recorder.watch("primary", state.engine)
        recorder.watch("replica", state.replica)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tidings") as http:
            yield http, recorder


READER_ROLE = "tidings_replica_reader"


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def read_only_url(database_url: str) -> str:
    return read_only_login(database_url)


def read_only_login(database_url: str) -> str:
    """The same database, through a login that can only read it."""
    if database_url.startswith("sqlite"):
        return database_url  # the replica engine on SQLite is query_only already
    exists = f"SELECT 1 FROM pg_roles WHERE rolname = '{READER_ROLE}'"
    asyncio.run(
        _admin(
            database_url,
            f"DO $$ BEGIN IF NOT EXISTS ({exists}) THEN CREATE ROLE {READER_ROLE} LOGIN; "
            "END IF; END $$",
            f"ALTER ROLE {READER_ROLE} SET default_transaction_read_only = on",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER_ROLE}",
        )
    )
    return database_url.replace("postgres@", f"{READER_ROLE}@", 1)


async def test_reads_go_to_the_replica_and_writes_to_the_primary(
    database_url: str, read_only_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    login, password = await issue_dr_login(sessions, clock, world.client_id)
    [message_id] = await accept_messages(sessions, clock, world)
    headers = {"X-API-KEY": world.live_key}
    assert read_only_url != database_url or database_url.startswith("sqlite")
    async with gateway(database_url, read_only_url, clock) as (http, recorder):
        recorder.clear()
        for path in (f"/rest/sms/{message_id}", "/rest/sms/reference/ref0", f"/sms/{message_id}"):
            answer = await http.get(path, headers=headers)
            assert answer.status_code == 200 and answer.json()["id"] == str(message_id)
        dr = await http.get(
            f"/{world.client_id}/api/dr/{message_id}/advanced", headers=basic(login, password)
        )
        assert dr.status_code == 200, dr.text
        assert len(recorder.reading("replica", "from messages")) >= 4
        assert recorder.reading("primary", "from messages") == []
        assert not [s for s in recorder.statements["replica"] if s.startswith(("insert", "update"))]

        recorder.clear()
        created = await http.post(
            "/rest/sms/create",
            headers=headers,
            json={
                "destination": "phone",
                "msisdn": "380972000000",
                "reference": "new1",
                "originator": "test",
                "body": "hi",
            },
        )
        assert created.json()["error"] == "0", created.text
        # On PostgreSQL the insert is a CTE of the accept round's one write (WITH …).
        assert any("insert into messages" in s for s in recorder.statements["primary"])
        assert recorder.statements["replica"] == []

        # The console's pages read the replica too.
        async with transaction(sessions) as session:
            await create_operator(session, clock, name="olga", password=PASSWORD)
        assert (await sign_in(http, "olga", PASSWORD)).status_code == 303
        recorder.clear()
        page = await http.get(f"/console/messages/{message_id}")
        assert page.status_code == 200 and "accepted" in page.text
        assert recorder.reading("replica", "from messages")
        assert recorder.reading("primary", "from messages") == []


@pytest.fixture
def empty_replica(database_url: str, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated database holding nothing: a replica that has not caught up at all."""
    if database_url.startswith("sqlite"):
        path = tmp_path / "replica.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    name = f"tidings_replica_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(POSTGRES_SERVER, f'CREATE DATABASE "{name}"'))
    url = f"{POSTGRES_SERVER.rpartition('/')[0]}/{name}"
    try:
        asyncio.run(upgrade(url))
        yield url
    finally:
        asyncio.run(_admin(POSTGRES_SERVER, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_a_status_read_the_replica_has_not_caught_up_with_comes_from_the_primary(
    database_url: str, empty_replica: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    [message_id] = await accept_messages(sessions, clock, world)
    headers = {"X-API-KEY": world.live_key}
    async with gateway(database_url, empty_replica, clock) as (http, recorder):
        answer = await http.get(f"/rest/sms/{message_id}", headers=headers)
        assert answer.status_code == 200 and answer.json()["id"] == str(message_id)
        assert len(recorder.reading("replica", "from messages")) == 1  # asked first
        assert len(recorder.reading("primary", "from messages")) == 1  # then the primary
        recorder.clear()
        missing = await http.get(f"/rest/sms/{message_id + 1000}", headers=headers)
        assert missing.status_code == 404
        assert len(recorder.reading("replica", "from messages")) == 1
        assert len(recorder.reading("primary", "from messages")) == 1
