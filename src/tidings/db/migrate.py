"""Applying Alembic migrations from code (the CLI, `serve` on SQLite, the tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from tidings.config import normalize_database_url
from tidings.db.engine import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url))
    return config


async def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the database to `revision`, on the caller's event loop."""
    await _run(database_url, command.upgrade, revision)


async def downgrade(database_url: str, revision: str) -> None:
    """Take the database back to `revision` (the migration tests; an operator's way back)."""
    await _run(database_url, command.downgrade, revision)


async def _run(database_url: str, step: Callable[[Config, str], None], revision: str) -> None:
    engine = create_engine(database_url)
    config = alembic_config(database_url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        step(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


def upgrade_sync(database_url: str, revision: str = "heads") -> None:
    asyncio.run(upgrade(database_url, revision))
