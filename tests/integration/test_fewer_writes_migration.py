"""Migration 0016 moves waiting dispatch jobs into their messages, and back on downgrade.

A job waiting at upgrade time must still be sent afterwards: losing it would lose the
message (issue 18: durability unchanged).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import fresh_postgres_database
from tidings.db.engine import create_engine
from tidings.db.migrate import downgrade, upgrade

BEFORE = "0013_supplier_rate_buckets"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the shared ones are migrated to the head already)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with fresh_postgres_database("tidings_mig") as url:
        yield url


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            return [tuple(row) for row in await connection.execute(text(sql))]
    finally:
        await engine.dispose()


async def _fill(url: str) -> None:
    """Two messages: one waiting for its supplier (a job retried once), one delivered."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for sql in (
                "INSERT INTO clients (id, name, balance, tariff, blocked, created_at,"
                " webhook_format, retry_schedule, smpp_max_binds)"
                " VALUES (1, 'acme', 0, 0, false, :now, 'ketchup', 'ketchup', 2)",
                "INSERT INTO suppliers (id, name, kind, options, enabled, created_at)"
                " VALUES (7, 'sim', 'simulator', '{}', true, :now)",
                "INSERT INTO messages (id, client_id, channel, source, msisdn, country,"
                " originator, body, encoding, parts, tariff, price, currency, status,"
                " supplier_id, expires_at, time_in)"
                " VALUES (1, 1, 'sms', 'api', '380501234567', 'UA', 'T', 'hi', 'gsm7', 1, 0,"
                " 20000, 'EUR', 'queued', 7, :now, :now),"
                " (2, 1, 'sms', 'api', '380501234568', 'UA', 'T', 'hi', 'gsm7', 1, 0,"
                " 20000, 'EUR', 'delivered', 7, :now, :now)",
                "INSERT INTO dispatch_jobs (message_id, supplier_id, due_at, attempts,"
                " last_error) VALUES (1, 7, :now, 1, 'timed out')",
            ):
                await connection.execute(text(sql), {"now": NOW})
    finally:
        await engine.dispose()


async def test_waiting_jobs_move_into_their_messages_and_back(blank_url: str) -> None:
    await upgrade(blank_url, BEFORE)
    await _fill(blank_url)
    await upgrade(blank_url)
    moved = await _rows(
        blank_url, "SELECT id, due_at IS NOT NULL, attempts, last_error FROM messages ORDER BY id"
    )
    assert moved == [(1, True, 1, "timed out"), (2, False, 0, None)]
    # Readers keep the old names through the view.
    assert await _rows(blank_url, "SELECT message_id, supplier_id FROM dispatch_jobs") == [(1, 7)]
    await downgrade(blank_url, BEFORE)
    back = await _rows(
        blank_url, "SELECT message_id, supplier_id, attempts, last_error FROM dispatch_jobs"
    )
    assert back == [(1, 7, 1, "timed out")]
