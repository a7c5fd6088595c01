"""Builders the tests share: a priced, routed world with one client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.accounts.service import create_client
from tidings.api.app import create_app
from tidings.billing.service import import_prices
from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import transaction
from tidings.delivery.worker import WorkerOptions
from tidings.numbering import CountryTable
from tidings.routing.service import create_route, create_supplier

PRICES_CSV = """type,tariff,country,price,currency
sms,0,UA,0.02,EUR
sms,0,SE,0.045,EUR
sms,9,UA,0.025,EUR
viber,0,UA,0.01,EUR
hlr,9,UA,0.002,EUR
"""


@dataclass(frozen=True)
class World:
    client_id: int
    live_key: str
    test_key: str
    supplier_id: int


async def build_world(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    balance: Decimal = Decimal("10"),
    supplier_options: dict[str, Any] | None = None,
    name: str = "acme",
) -> World:
    async with transaction(sessions) as session:
        await import_prices(session, CountryTable.load(), PRICES_CSV)
        created = await create_client(session, clock, name=name, balance=balance)
        supplier = await create_supplier(
            session, clock, name=f"sim-{name}", kind="simulator", options=supplier_options or {}
        )
        await create_route(session, clock, type_="sms", supplier=supplier.name)
    return World(created.client.id, created.live_key, created.test_key, supplier.id)


@asynccontextmanager
async def api_client(
    database_url: str,
    clock: Clock | None = None,
    *,
    with_workers: bool = False,
    settings: dict[str, Any] | None = None,
    worker_options: WorkerOptions | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over ASGI (its lifespan runs), for API-level integration tests."""
    app = create_app(
        Settings(database_url=database_url, **(settings or {})),
        with_workers=with_workers,
        clock=clock,
        worker_options=worker_options,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tidings") as client:
            yield client
