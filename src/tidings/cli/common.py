"""What every CLI command shares: settings, a transaction, output as JSON or a table."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.clock import SystemClock
from tidings.config import Settings, sqlite_path
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.outage import is_connection_error
from tidings.db.readiness import DatabaseNotReady, check_exists, check_migrated
from tidings.errors import TidingsError
from tidings.numbering import CountryTable
from tidings.runtime import tune_gc_for_service

T = TypeVar("T")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
clock = SystemClock()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def run_service(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a long-lived command (worker, SMPP server) on uvloop where it is installed, as
    uvicorn runs ``tidings serve``, with the garbage collector tuned for a server
    (tidings.runtime)."""
    tune_gc_for_service()
    loop_factory = None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever uvicorn's is
        pass
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction against the configured database; errors exit 1."""

    database_url = Settings().database_url

    async def main() -> T:
        check_exists(database_url)
        engine = create_engine(database_url)
        try:
            await check_migrated(engine, database_url)
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except TidingsError as error:
        return fail(error.message)  # type: ignore[no-any-return]
    except DatabaseNotReady as error:
        return fail(str(error))  # type: ignore[no-any-return]
    except Exception as error:
        if is_connection_error(error):  # the database went away mid-command
            return fail(f"the database stopped answering: {str(error).splitlines()[0][:200]}")  # type: ignore[no-any-return]
        raise


def prepare_database_folder(settings: Settings) -> None:
    """Commands that create the database (serve, demo, db upgrade) make its folder first:
    the default one, in the user's data folder, does not exist on a fresh machine."""
    path = sqlite_path(settings.database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def fail(message: str) -> Any:
    # soft_wrap: one line however narrow the terminal, so scripts can grep it
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(1)


def import_csv_file(
    file: Path,
    importer: Callable[[AsyncSession, CountryTable, str], Awaitable[int]],
    as_json: bool,
) -> None:
    """Read a CSV file (a BOM is fine) and hand it to `importer` in one transaction; print
    how many rows it imported. A file that can't be read is one line and exit 1."""
    try:
        text = file.read_text("utf-8-sig")
    except OSError as error:
        fail(str(error))
    countries = CountryTable.load()

    async def work(session: AsyncSession) -> dict[str, Any]:
        return {"imported": await importer(session, countries, text)}

    emit(run_in_transaction(work), as_json)


def emit(data: Any, as_json: bool, *, title: str | None = None) -> None:
    """JSON for scripts; for people, a table of a list of dicts or key/value pairs."""
    if as_json:
        sys.stdout.write(json.dumps(data, default=_default) + "\n")
        return
    console = Console()
    rows: Sequence[dict[str, Any]] = data if isinstance(data, list) else [data]
    if not rows:
        console.print("(none)")
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*(_cell(value) for value in row.values()))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, default=_default)
    return str(value)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`--option key=value` pairs; numbers and booleans become JSON values."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--option takes key=value, not {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options
