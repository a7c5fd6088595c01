"""Is the configured database there and migrated? Asked by the admin commands before they
touch it, so that a wrong folder or a forgotten `make run` gives one clear line, not a
traceback and not a new empty database."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.config import normalize_database_url, sqlite_path
from tidings.db.migrate import alembic_config
from tidings.db.outage import is_connection_error


class DatabaseNotReady(Exception):
    """The database is missing, unreachable or not migrated; the message says what to run."""


def expected_heads(database_url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def check_exists(database_url: str) -> None:
    """A SQLite file must exist before we connect: connecting would create an empty one."""
    path = sqlite_path(database_url)
    if path is not None and not path.exists():
        raise DatabaseNotReady(
            f"no database at {path}: start the gateway once (`make run` or `tidings serve`), "
            "run `tidings db upgrade`, or set TIDINGS_DATABASE_URL"
        )


async def check_migrated(engine: AsyncEngine, database_url: str) -> None:
    """Connect and compare the stored Alembic revisions with this code's heads."""
    where = _describe(database_url)
    try:
        async with engine.connect() as connection:
            has_table = await connection.run_sync(
                lambda sync: sync.dialect.has_table(sync, "alembic_version")
            )
            stored = (
                set(
                    (
                        await connection.execute(text("SELECT version_num FROM alembic_version"))
                    ).scalars()
                )
                if has_table
                else set()
            )
    except Exception as error:  # the drivers' own connection errors (asyncpg, sqlite3)
        if is_connection_error(error):
            raise DatabaseNotReady(
                f"cannot reach the database at {where}: {_one_line(error)}"
            ) from None
        raise
    if not stored:
        raise DatabaseNotReady(
            f"the database at {where} has no tables yet: run `tidings db upgrade`"
        )
    if stored != expected_heads(database_url):
        raise DatabaseNotReady(
            f"the database at {where} is at revision {', '.join(sorted(stored))}, "
            "not this version's: run `tidings db upgrade`"
        )


def _describe(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    path = sqlite_path(database_url)
    if path is not None:
        return str(path)
    return make_url(normalize_database_url(database_url)).render_as_string(hide_password=True)


def _one_line(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return (message[0] if message else type(error).__name__)[:200]
