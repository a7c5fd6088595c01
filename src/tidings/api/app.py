"""The application factory: everything is built here, at start, from the settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tidings import __version__
from tidings.accounts.cache import CallerCache
from tidings.api import health
from tidings.api.client import fallback, sms
from tidings.api.dlr import router as dlr_api
from tidings.api.dr import router as dr_api
from tidings.api.state import AppState
from tidings.clock import Clock, SystemClock
from tidings.config import Settings
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.delivery.reports import ReportQueue
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.messages.acceptance import Limits
from tidings.messages.catalog import CatalogCache
from tidings.messages.writer import AcceptQueue
from tidings.numbering import CountryTable
from tidings.ttlcache import TtlCache
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

log = logging.getLogger("tidings")


def create_app(
    settings: Settings,
    *,
    with_workers: bool = True,
    clock: Clock | None = None,
    worker_options: WorkerOptions | None = None,
) -> FastAPI:
    """The HTTP API; with `with_workers` the delivery worker runs in the same process."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        the_clock = clock or SystemClock()
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            clock=the_clock,
            countries=CountryTable.load(),
            limits=Limits(max_batch_size=settings.max_batch_size, max_parts=settings.max_sms_parts),
            callers=CallerCache(sessions, ttl=settings.cache_ttl),
            catalog=CatalogCache(sessions, ttl=settings.cache_ttl),
            accepts=AcceptQueue(sessions, the_clock),
            reports=ReportQueue(sessions, the_clock),
            dlr_logins=TtlCache(settings.cache_ttl),
        )
        app.state.tidings = state
        state.accepts.start()
        state.reports.start()
        webhooks: WebhookWorker | None = None
        if with_workers:
            state.worker = DeliveryWorker(
                sessions, the_clock, worker_options or WorkerOptions.from_settings(settings)
            )
            await state.worker.start()
            webhooks = WebhookWorker(sessions, the_clock, WebhookOptions.from_settings(settings))
            await webhooks.start()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            if state.worker is not None:
                await state.worker.stop()
            if webhooks is not None:
                await webhooks.stop()
            await state.accepts.stop()
            await state.reports.stop()
            await engine.dispose()

    app = FastAPI(
        title="Tidings",
        version=__version__,
        description="An A2P messaging gateway: SMS through upstream suppliers, "
        "with a status for every message.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(sms.build_router("/rest"))
    app.include_router(sms.build_router(""))
    app.include_router(dlr_api.router)
    app.include_router(dr_api.router)
    app.include_router(fallback.router)
    return app
