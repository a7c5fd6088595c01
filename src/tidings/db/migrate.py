"""Applying Alembic migrations from code (the CLI, `serve` on SQLite, the tests)."""

from __future__ import annotations

import asyncio
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
    engine = create_engine(database_url)
    config = alembic_config(database_url)

    def _upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()


def upgrade_sync(database_url: str, revision: str = "heads") -> None:
    asyncio.run(upgrade(database_url, revision))
