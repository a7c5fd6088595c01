"""What acceptance needs to know about prices and routes, kept in memory for a moment.

Every create request needs the price list and the route table. Reading them per request costs
two queries; they change rarely (an operator's CLI command), so a snapshot at most
`ttl` seconds old serves. An import or a new route takes effect within that time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.billing.models import Price
from tidings.billing.repository import PriceRepository
from tidings.connectors.hlr.networks import NetworkTable
from tidings.routing.cache import default_networks, load_plans
from tidings.routing.plan import LoadMeter
from tidings.routing.service import RouteTable


@dataclass(frozen=True, slots=True)
class UnitPrice:
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Catalog:
    # (type, tariff) -> country -> price of one part
    prices: dict[tuple[str, int], dict[str, UnitPrice]]
    routes: dict[str, RouteTable]

    @classmethod
    def of(cls, prices: Sequence[Price], routes: dict[str, RouteTable]) -> Catalog:
        table: dict[tuple[str, int], dict[str, UnitPrice]] = {}
        for price in prices:
            table.setdefault((price.type, price.tariff), {})[price.country] = UnitPrice(
                price.price, price.currency
            )
        return cls(table, routes)

    def price_list(self, type_: str, tariff: int) -> dict[str, UnitPrice]:
        return self.prices.get((type_, tariff), {})

    def route_table(self, type_: str) -> RouteTable:
        return self.routes.get(type_) or RouteTable.of((), type_=type_)


async def load_catalog(
    session: AsyncSession,
    types: Sequence[str] = ("sms", "viber"),
    *,
    networks: NetworkTable | None = None,
    load: LoadMeter | None = None,
) -> Catalog:
    """Prices and routing plans (routes, costs, rates, breakers, limits): six queries."""
    prices = await PriceRepository(session).all()
    return Catalog.of(prices, await load_plans(session, types, networks=networks, load=load))


class CatalogCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 2.0) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._catalog: Catalog | None = None
        self._loaded = 0.0
        self._lock = asyncio.Lock()
        # Kept across reloads: the carrier index is built once, the load counts go on.
        self._networks = default_networks()
        self._load = LoadMeter()

    def fresh(self) -> Catalog | None:
        """The catalog when it needs no reload (the hot path's synchronous look), else None."""
        if self._catalog is not None and time.monotonic() - self._loaded < self.ttl:
            return self._catalog
        return None

    async def get(self) -> Catalog:
        catalog = self.fresh()
        if catalog is not None:
            return catalog
        async with self._lock:  # one reload, however many requests noticed it is stale
            if self._catalog is None or time.monotonic() - self._loaded >= self.ttl:
                async with self.sessions() as session:
                    self._catalog = await load_catalog(
                        session, networks=self._networks, load=self._load
                    )
                self._loaded = time.monotonic()
            return self._catalog

    def invalidate(self) -> None:
        self._catalog = None
