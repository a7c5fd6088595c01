"""PostgreSQL connections are pinged on checkout only after sitting idle (db/engine.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from tidings.db import engine as engine_module
from tidings.db.engine import create_engine


async def test_a_busy_connection_is_not_pinged_an_idle_one_is_and_a_dead_one_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("the ping is PostgreSQL's (SQLite has no connection to lose)")
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine = create_engine(database_url)
    pings: list[Any] = []
    original = engine.dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return original(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    try:
        for _ in range(5):  # back to back: no ping
            async with engine.connect() as connection:
                pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert pings == []
        await asyncio.sleep(0.3)
        async with engine.connect() as connection:  # idle: pinged, alive, the same one
            assert (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one() == pid
        assert len(pings) == 1
        # The server ends that connection while it sits in the pool (a restart would).
        admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
        async with engine.connect() as connection:  # pinged, found dead, replaced
            fresh = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert fresh != pid and len(pings) == 2
    finally:
        await engine.dispose()
