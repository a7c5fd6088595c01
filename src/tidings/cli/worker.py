"""`tidings worker`: the background loops without the HTTP API, in one process or several.

With `--processes N` the loops are spread as `serve --processes N` spreads them
(`worker_roles`): the first process runs the supplier lanes (and the receipts they bring),
the second the webhook sender, HLR and export workers, any further one another webhook
sender. Several worker commands (on several hosts) may share one PostgreSQL as well: every
claim is a lease (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import typer

from tidings.api.app import Roles
from tidings.cli.common import clock
from tidings.config import Settings
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.exports.repository import create_reader_engine
from tidings.exports.storage import storage_for
from tidings.exports.worker import ExportOptions, ExportWorker
from tidings.hlr.worker import HlrOptions, HlrWorker
from tidings.inbound.hooks import after_inbound_stored
from tidings.numbering import CountryTable
from tidings.observability.exposition import MetricsServer
from tidings.observability.metrics import build_metrics
from tidings.wakeups import Wakeups
from tidings.webhooks.worker import WebhookOptions, WebhookWorker


def worker_roles(index: int, count: int) -> Roles:
    """The loops of worker process `index` of `count` (none of them serves HTTP)."""
    if count <= 1:
        return Roles(smpp=False, http=False)
    if index == 0:
        return Roles(webhooks=False, background=False, smpp=False, http=False)
    if index == 1:
        return Roles(delivery=False, smpp=False, http=False)
    return Roles(delivery=False, background=False, smpp=False, http=False)


async def run_worker(settings: Settings, roles: Roles, metrics_port: int | None) -> None:
    """Run the loops `roles` names until SIGINT or SIGTERM."""
    engine = create_engine(settings.database_url)
    wakeups = Wakeups.for_database(settings.database_url, idle_poll=settings.idle_poll)
    await wakeups.start()
    sessions = create_sessionmaker(engine, wakeups)
    # Each process has its own metrics; this one's are served only when a port is set.
    metrics = build_metrics(settings, clock)
    exposition = (
        MetricsServer(metrics, settings.http_host, metrics_port)
        if metrics is not None and metrics_port is not None
        else None
    )
    started: list[DeliveryWorker | WebhookWorker | ExportWorker | HlrWorker] = []
    exports: ExportWorker | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if roles.delivery:
            delivery = DeliveryWorker(
                sessions,
                clock,
                WorkerOptions.from_settings(settings),
                metrics=metrics,
                inbound_hooks=after_inbound_stored(settings),
            )
            await delivery.start()
            started.append(delivery)
            typer.echo(f"worker {delivery.worker_id}: supplier lanes running", err=True)
        if roles.webhooks:
            webhooks = WebhookWorker(
                sessions, clock, WebhookOptions.from_settings(settings), metrics=metrics
            )
            await webhooks.start()
            started.append(webhooks)
        if roles.background:
            exports = ExportWorker(
                sessions,
                # The message stream may read a replica; the files go to the primary.
                create_reader_engine(settings.database_replica_url or settings.database_url),
                storage_for(settings, sessions, clock),
                clock,
                CountryTable.load(),
                ExportOptions.from_settings(settings),
            )
            await exports.start()
            started.append(exports)
            hlr = HlrWorker(
                sessions, clock, CountryTable.load(), HlrOptions.from_settings(settings)
            )
            await hlr.start()
            started.append(hlr)
        if exposition is not None:
            await exposition.start()
            typer.echo(
                f"metrics on http://{settings.http_host}:{exposition.port}/metrics", err=True
            )
        typer.echo(f"worker running: {', '.join(roles.loop_names())}", err=True)
        await stop.wait()
    finally:
        if exposition is not None:
            await exposition.stop()
        for worker in started:  # lanes first: their last receipts' webhooks are stored
            await worker.stop()
        if exports is not None:
            await exports.reader.dispose()
        if metrics is not None:
            await metrics.close()
        await wakeups.stop()
        await engine.dispose()
