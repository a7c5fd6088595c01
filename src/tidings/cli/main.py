"""`tidings`: the gateway's one command."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import typer

from tidings import __version__
from tidings.cli.admin import clients_app, prices_app, routes_app, suppliers_app
from tidings.cli.banner import print_banner
from tidings.cli.common import (
    JSON_OPTION,
    clock,
    emit,
    fail,
    prepare_database_folder,
    run_in_transaction,
    run_service,
)
from tidings.cli.numbers import numbers_app
from tidings.cli.operators import operators_app
from tidings.cli.optouts import optout_app
from tidings.cli.routing import costs_app, fx_app, report_app, routes_explain
from tidings.config import Settings
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.db.migrate import upgrade, upgrade_sync
from tidings.db.readiness import DatabaseNotReady, check_exists, check_migrated
from tidings.demo import DemoKeys, ensure_demo
from tidings.numbering import CountryTable
from tidings.observability.logging import configure_logging
from tidings.runtime import tune_gc_for_service

app = typer.Typer(
    help="Tidings, an A2P messaging gateway. Settings come from TIDINGS_* variables.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(clients_app, name="clients")
app.add_typer(prices_app, name="prices")
app.add_typer(suppliers_app, name="suppliers")
app.add_typer(routes_app, name="routes")
routes_app.command("explain")(routes_explain)
app.add_typer(costs_app, name="costs")
app.add_typer(fx_app, name="fx")
app.add_typer(report_app, name="report")
app.add_typer(operators_app, name="operators")
app.add_typer(optout_app, name="optout")
app.add_typer(numbers_app, name="numbers")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tidings {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Tidings, an A2P messaging gateway. Settings come from TIDINGS_* variables."""


def _logging(settings: Settings) -> None:
    configure_logging(settings.log_level)  # JSON lines on stderr (docs/operations.md)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("heads")) -> None:
    """Apply the Alembic migrations."""
    settings = Settings()
    prepare_database_folder(settings)
    upgrade_sync(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("prune")
def db_prune(
    days: int | None = typer.Option(
        None, "--days", min=1, help="Days of history to keep (default TIDINGS_RETENTION_DAYS)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove the message history past retention: whole weeks on PostgreSQL, batches on
    SQLite; messages still awaiting a report, a webhook or an SMPP receipt stay. Prints what
    it removed."""
    from tidings.retention.service import prune

    settings = Settings()

    async def main() -> dict[str, Any]:
        check_exists(settings.database_url)
        engine = create_engine(settings.database_url)
        try:
            await check_migrated(engine, settings.database_url)
            keep = days if days is not None else settings.retention_days
            report = await prune(create_sessionmaker(engine), clock.now(), keep)
            return report.as_json()
        finally:
            await engine.dispose()

    try:
        emit(asyncio.run(main()), as_json)
    except DatabaseNotReady as error:
        fail(str(error))


def _run_http(settings: Settings, *, with_workers: bool, processes: int) -> None:
    from tidings.api.app import create_app
    from tidings.cli.processes import QuietServer, serve_processes, uvicorn_config

    if processes > 1:
        serve_processes(settings, processes, with_workers=with_workers)
        return
    config = uvicorn_config(settings, create_app(settings, with_workers=with_workers))
    tune_gc_for_service()
    QuietServer(config).run()


def _processes_option(default: int | None) -> Any:
    return typer.Option(
        default,
        "--processes",
        "-p",
        min=1,
        help="Processes, each with its own event loop, sharing the HTTP port"
        + (" (default: TIDINGS_PROCESSES, else one per core)." if default is None else "."),
    )


@app.command()
def serve(
    demo: bool = typer.Option(False, "--demo", help="Set up the demo client and print its key."),
    processes: int | None = _processes_option(None),
) -> None:
    """Run the HTTP API and the workers (the embedded mode), on every core."""
    from tidings.cli.processes import core_count

    settings = Settings()
    _logging(settings)
    prepare_database_folder(settings)
    if settings.is_sqlite or demo:
        asyncio.run(upgrade(settings.database_url))
    print_banner(settings, _demo_keys() if demo else None)
    if processes is None:
        processes = settings.processes or core_count()
    _run_http(settings, with_workers=True, processes=processes)


@app.command()
def api(processes: int = _processes_option(1)) -> None:
    """Run only the HTTP API (run `tidings worker` processes beside it)."""
    settings = Settings()
    _logging(settings)
    _run_http(settings, with_workers=False, processes=processes)


@app.command()
def worker(
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        help="Serve GET /metrics on this port of TIDINGS_HTTP_HOST (TIDINGS_METRICS_PORT); "
        "with --processes, process i on this port + i.",
    ),
    processes: int | None = typer.Option(
        None,
        "--processes",
        min=1,
        help="Worker processes, the loops spread over them (default: TIDINGS_WORKER_PROCESSES, "
        "else one per core).",
    ),
) -> None:
    """Run only the delivery, webhook, export and HLR workers; several may share one PostgreSQL."""
    from tidings.cli.processes import core_count, worker_processes
    from tidings.cli.worker import run_worker, worker_roles

    settings = Settings()
    _logging(settings)
    port = settings.metrics_port if metrics_port is None else metrics_port
    count = processes or settings.worker_processes or core_count()
    if count > 1:
        worker_processes(count, port)
        return
    run_service(lambda: run_worker(settings, worker_roles(0, 1), port))


@app.command()
def smpp() -> None:
    """Run only the SMPP server (TIDINGS_SMPP_PORT; run the workers beside it)."""
    from tidings.smpp_server.server import serve_smpp

    settings = Settings()
    _logging(settings)
    if settings.smpp_port is None:
        typer.echo("TIDINGS_SMPP_PORT is not set", err=True)
        raise typer.Exit(2)
    if settings.is_sqlite:
        asyncio.run(upgrade(settings.database_url))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve_smpp(settings, stop, clock)

    run_service(main)


@app.command()
def demo(
    as_json: bool = typer.Option(False, "--json"),
    rotate_keys: bool = typer.Option(
        False, "--rotate-keys", help="Revoke the demo keys and issue new ones."
    ),
) -> None:
    """Set up the demo client, prices and simulator supplier; print the demo keys (the same
    ones each time until --rotate-keys)."""
    settings = Settings()
    prepare_database_folder(settings)
    asyncio.run(upgrade(settings.database_url))
    keys = _demo_keys(rotate=rotate_keys)
    emit({"id": keys.client_id, "live_key": keys.live_key, "test_key": keys.test_key}, as_json)


def _demo_keys(*, rotate: bool = False) -> DemoKeys:
    countries = CountryTable.load()
    return run_in_transaction(lambda session: ensure_demo(session, clock, countries, rotate=rotate))


def main() -> None:
    app()
