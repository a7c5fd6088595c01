"""What the HTTP layer needs from the running process, built once by the app factory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from tidings.accounts.cache import CallerCache
from tidings.clock import Clock
from tidings.config import Settings
from tidings.delivery.reports import ReportQueue
from tidings.delivery.worker import DeliveryWorker
from tidings.inbound.service import InboundHook
from tidings.messages.acceptance import Limits
from tidings.messages.catalog import CatalogCache
from tidings.messages.writer import AcceptQueue
from tidings.numbering import CountryTable
from tidings.observability.group import ProcessGroupMetrics
from tidings.observability.metrics import Metrics
from tidings.ttlcache import TtlCache


@dataclass(slots=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Reads that may lag a moment (DR queries, status reads, console pages): the replica's
    # sessions when TIDINGS_DATABASE_REPLICA_URL is set, else `sessions` (db/replica.py).
    reads: async_sessionmaker[AsyncSession]
    clock: Clock
    countries: CountryTable
    limits: Limits
    callers: CallerCache
    catalog: CatalogCache
    accepts: AcceptQueue
    reports: ReportQueue
    # (DLR login, password digest) -> supplier id
    dlr_logins: TtlCache[tuple[str, str], int]
    worker: DeliveryWorker | None = None
    metrics: Metrics | None = None  # None: TIDINGS_METRICS=0
    # `tidings serve --processes N`: /metrics gathers every process's (observability/group.py).
    metrics_group: ProcessGroupMetrics | None = None
    replica: AsyncEngine | None = None  # the engine behind `reads`, when it is a replica
    ready: bool = field(default=False)
    # What runs on new inbound messages in their transaction (inbound.service).
    inbound_hooks: Sequence[InboundHook] = ()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.tidings
    return state
