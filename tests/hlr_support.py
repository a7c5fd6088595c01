"""Builders the HLR tests share: a world with HLR prices and an HLR provider route."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import World, build_world
from tidings.accounts.models import Client
from tidings.billing.service import import_prices
from tidings.clock import Clock
from tidings.db.engine import transaction
from tidings.hlr.models import HlrLookup
from tidings.numbering import CountryTable
from tidings.routing.service import create_route, create_supplier

HLR_PRICES = """type,tariff,country,price,currency
hlr,0,UA,0.002,EUR
hlr,0,PL,0.003,EUR
hlr,9,UA,0.002,EUR
hlr,5,UA,0.01,USD
"""


async def build_hlr_world(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    balance: Decimal = Decimal("10"),
    kind: str = "hlr_simulator",
    options: dict[str, Any] | None = None,
    name: str = "acme",
    callback_url: str | None = None,
) -> tuple[World, int]:
    """The shared world plus HLR prices and one HLR provider; (world, provider id)."""
    world = await build_world(sessions, clock, balance=balance, name=name)
    async with transaction(sessions) as session:
        await import_prices(session, CountryTable.load(), HLR_PRICES)
        provider = await create_supplier(
            session, clock, name=f"hlr-{name}", kind=kind, options=options or {}
        )
        await create_route(session, clock, type_="hlr", supplier=provider.name)
        if callback_url is not None:
            client = await session.get(Client, world.client_id)
            assert client is not None
            client.callback_url = callback_url
    return world, provider.id


async def lookups(sessions: async_sessionmaker[AsyncSession]) -> list[HlrLookup]:
    async with sessions() as session:
        return list(await session.scalars(select(HlrLookup).order_by(HlrLookup.id)))


async def balance_of(sessions: async_sessionmaker[AsyncSession], client_id: int) -> Decimal:
    async with sessions() as session:
        client = await session.get(Client, client_id)
    assert client is not None
    return client.balance
