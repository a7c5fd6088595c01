"""The application factory: everything is built here, at start, from the settings."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from tidings import __version__
from tidings.accounts.cache import CallerCache
from tidings.api import health
from tidings.api import metrics as metrics_api
from tidings.api.client import fallback, hlr, optout, sms, stat, viber
from tidings.api.dlr import mo as mo_api
from tidings.api.dlr import router as dlr_api
from tidings.api.dr import router as dr_api
from tidings.api.edges import install_edges
from tidings.api.limits import BodySizeLimit, RateLimits
from tidings.api.openapi import install_openapi
from tidings.api.state import AppState
from tidings.clock import Clock, SystemClock
from tidings.config import Settings
from tidings.console import router as console
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.db.replica import create_replica_engine
from tidings.delivery.reports import ReportQueue
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.exports.repository import create_reader_engine
from tidings.exports.storage import storage_for
from tidings.exports.worker import ExportOptions, ExportWorker
from tidings.hlr.worker import HlrOptions, HlrWorker
from tidings.inbound.hooks import after_inbound_stored
from tidings.messages.acceptance import Limits
from tidings.messages.catalog import CatalogCache
from tidings.messages.writer import AcceptQueue
from tidings.numbering import CountryTable
from tidings.observability.group import ProcessGroupMetrics
from tidings.observability.metrics import build_metrics
from tidings.smpp_server.server import ServerOptions, SmppServer
from tidings.ttlcache import TtlCache
from tidings.wakeups import Wakeups
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

log = logging.getLogger("tidings")


@dataclass(frozen=True, slots=True)
class Roles:
    """Which background loops run beside the HTTP API in this process.

    `tidings serve` runs them all in one process, or spreads them over several
    (`--processes`, tidings/cli/processes.py: `roles_for`): the HTTP API and the SMPP server
    in one, the background loops in another, so that no one event loop carries the whole
    path of a message.
    """

    delivery: bool = True  # supplier lanes, sweeper, receipts from connectors
    webhooks: bool = True
    background: bool = True  # HLR lookups and statistics exports
    smpp: bool = True  # the SMPP server, where TIDINGS_SMPP_PORT is set
    http: bool = True  # accepts HTTP requests (a process with False runs only its loops)

    def loop_names(self) -> list[str]:
        names = ("supplier lanes", "webhooks", "HLR and exports", "SMPP server")
        wanted = (self.delivery, self.webhooks, self.background, self.smpp)
        return [name for name, on in zip(names, wanted, strict=True) if on] or ["nothing"]

    @classmethod
    def none(cls) -> Roles:
        return cls(delivery=False, webhooks=False, background=False, smpp=True)


def create_app(
    settings: Settings,
    *,
    with_workers: bool = True,
    roles: Roles | None = None,
    process_group: tuple[Path, int] | None = None,
    clock: Clock | None = None,
    worker_options: WorkerOptions | None = None,
) -> FastAPI:
    """The HTTP API; with `with_workers` the workers run in the same process (all of them,
    or those `roles` names)."""
    if roles is None:
        roles = Roles() if with_workers else Roles.none()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        wakeups = Wakeups.for_database(settings.database_url, idle_poll=settings.idle_poll)
        await wakeups.start()
        sessions = create_sessionmaker(engine, wakeups)
        replica = (
            create_replica_engine(settings.database_replica_url)
            if settings.database_replica_url
            else None
        )
        the_clock = clock or SystemClock()
        metrics = build_metrics(settings, the_clock)
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            reads=sessions if replica is None else create_sessionmaker(replica),
            replica=replica,
            clock=the_clock,
            countries=CountryTable.load(),
            limits=Limits(max_batch_size=settings.max_batch_size, max_parts=settings.max_sms_parts),
            callers=CallerCache(sessions, ttl=settings.cache_ttl),
            catalog=CatalogCache(sessions, ttl=settings.cache_ttl),
            accepts=AcceptQueue(sessions, the_clock, metrics=metrics),
            reports=ReportQueue(sessions, the_clock, metrics=metrics),
            dlr_logins=TtlCache(settings.cache_ttl),
            metrics=metrics,
            inbound_hooks=after_inbound_stored(settings),
        )
        app.state.tidings = state
        if metrics is not None and process_group is not None:
            state.metrics_group = ProcessGroupMetrics(metrics, *process_group)
            await state.metrics_group.start()
        app.state.exports = stat.StatContext(storage_for(settings, sessions, the_clock))
        state.accepts.start()
        state.reports.start()
        webhooks: WebhookWorker | None = None
        exports: ExportWorker | None = None
        hlr_worker: HlrWorker | None = None
        if roles.delivery:
            state.worker = DeliveryWorker(
                sessions,
                the_clock,
                worker_options or WorkerOptions.from_settings(settings),
                metrics=metrics,
                inbound_hooks=state.inbound_hooks,
            )
            await state.worker.start()
        if roles.webhooks:
            webhooks = WebhookWorker(
                sessions, the_clock, WebhookOptions.from_settings(settings), metrics=metrics
            )
            await webhooks.start()
        if roles.background:
            exports = ExportWorker(
                sessions,
                create_reader_engine(settings.database_replica_url or settings.database_url),
                app.state.exports.storage,
                the_clock,
                state.countries,
                ExportOptions.from_settings(settings),
            )
            await exports.start()
            app.state.exports.wake = exports.wake
            hlr_worker = HlrWorker(
                sessions, the_clock, state.countries, HlrOptions.from_settings(settings)
            )
            await hlr_worker.start()
            app.state.hlr_wake = hlr_worker.wake
        smpp: SmppServer | None = None
        if settings.smpp_port is not None and roles.smpp:
            smpp = SmppServer(
                sessions,
                the_clock,
                state.catalog,
                state.accepts,
                state.limits,
                ServerOptions.from_settings(settings),
                metrics=metrics,
            )
            await smpp.start()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            if smpp is not None:
                await smpp.stop()
            if state.worker is not None:
                await state.worker.stop()
            if webhooks is not None:
                await webhooks.stop()
            if hlr_worker is not None:
                await hlr_worker.stop()
            if exports is not None:
                await exports.stop()
                await exports.reader.dispose()
            await state.accepts.stop()
            await state.reports.stop()
            if state.metrics_group is not None:
                await state.metrics_group.stop()
            if metrics is not None:
                await metrics.close()
            await wakeups.stop()
            if replica is not None:
                await replica.dispose()
            await engine.dispose()

    app = FastAPI(
        title="Tidings",
        version=__version__,
        description="An A2P messaging gateway: SMS through upstream suppliers, "
        "with a status for every message.",
        lifespan=lifespan,
    )
    # Request limits (docs/api-hardening.md); a test's clock drives the rate limiter too.
    app.state.rate_limits = RateLimits.from_settings(
        settings, (lambda: clock.now().timestamp()) if clock is not None else time.monotonic
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    # Routes are matched in order, one regular expression each: the suppliers' DLR intake,
    # the busiest route by requests (one receipt per request is how suppliers post), first.
    app.include_router(dlr_api.router)
    app.include_router(mo_api.router)
    app.include_router(health.router)
    app.include_router(metrics_api.router)
    app.include_router(sms.build_router("/rest"))
    app.include_router(sms.build_router(""))
    app.include_router(stat.build_router("/rest"))
    app.include_router(stat.build_router(""))
    app.include_router(hlr.build_router("/rest"))
    app.include_router(hlr.build_router(""))
    app.include_router(viber.build_router("/rest"))
    app.include_router(viber.build_router(""))
    app.include_router(optout.build_router("/rest"))
    app.include_router(optout.build_router(""))
    app.include_router(dr_api.router)
    app.include_router(console.build_router(settings))
    app.include_router(fallback.router)
    install_openapi(app)
    install_edges(app)
    return app
