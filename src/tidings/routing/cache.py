"""Routing plans in memory: loaded at most every TIDINGS_CACHE_TTL seconds, shared by the
lanes of a worker process (acceptance keeps its own in the catalog)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.connectors.hlr.networks import NetworkTable
from tidings.numbering import default_country_table
from tidings.routing.costs import load_costs, load_fx
from tidings.routing.health import health_view, states
from tidings.routing.plan import LoadMeter, RoutingPlan
from tidings.routing.repository import RouteRepository, SupplierRepository


async def load_plans(
    session: AsyncSession,
    types: Sequence[str] = ("sms", "viber"),
    *,
    networks: NetworkTable | None = None,
    load: LoadMeter | None = None,
) -> dict[str, RoutingPlan]:
    """Each type's plan: routes, costs, exchange rates, breakers, suppliers (five queries)."""
    active = await RouteRepository(session).active_all()
    costs = await load_costs(session)
    fx = await load_fx(session)
    health = {i: health_view(row) for i, row in (await states(session)).items()}
    suppliers = await SupplierRepository(session).list()
    throughput = {s.id: s.throughput for s in suppliers}
    names = {s.id: s.name for s in suppliers}
    networks = networks or default_networks()
    load = load or LoadMeter()
    return {
        t: RoutingPlan.of(
            [r for r in active if r.type == t],
            type_=t,
            costs=costs,
            fx=fx,
            health=health,
            throughput=throughput,
            load=load,
            networks=networks,
            names=names,
        )
        for t in types
    }


def default_networks() -> NetworkTable:
    """MCCMNCs of carriers from the numbering plan; its carrier index is built on first use."""
    return NetworkTable(default_country_table())


class PlanCache:
    """The SMS routing plan, at most `ttl` seconds old; `loaded_at` is the clock's time of
    the load (a lane trusts what it recorded itself since then over the snapshot)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, ttl: float = 2.0
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.ttl = ttl
        self._plan: RoutingPlan | None = None
        self._loaded = 0.0
        self.loaded_at: datetime | None = None
        self._lock = asyncio.Lock()
        self._networks = default_networks()
        self._load = LoadMeter()

    async def get(self) -> RoutingPlan:
        if self._plan is not None and time.monotonic() - self._loaded < self.ttl:
            return self._plan
        async with self._lock:
            if self._plan is None or time.monotonic() - self._loaded >= self.ttl:
                loaded_at = self.clock.now()
                async with self.sessions() as session:
                    plans = await load_plans(
                        session, ("sms",), networks=self._networks, load=self._load
                    )
                self._plan, self.loaded_at = plans["sms"], loaded_at
                self._loaded = time.monotonic()
            return self._plan

    def invalidate(self) -> None:
        self._plan = None
