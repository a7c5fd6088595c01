"""The demo set-up `make run` starts with: a client, a price list, a simulator supplier."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ApiKeyRepository, ClientRepository
from tidings.accounts.service import KeyKind, create_client, issue_key
from tidings.billing.service import import_prices
from tidings.clock import Clock
from tidings.numbering import CountryTable
from tidings.routing.repository import RouteRepository, SupplierRepository
from tidings.routing.service import create_route, create_supplier

DEMO_CLIENT = "demo"
DEMO_SUPPLIER = "simulator"


@dataclass(frozen=True, slots=True)
class DemoKeys:
    client_id: int
    live_key: str
    test_key: str


def demo_price_csv() -> str:
    return resources.files("tidings.demo").joinpath("prices.csv").read_text("utf-8")


async def ensure_demo(session: AsyncSession, clock: Clock, countries: CountryTable) -> DemoKeys:
    """Create what is missing; issue fresh demo keys (stored hashed, so old ones can't be shown)."""
    if not await RouteRepository(session).list():
        if await SupplierRepository(session).get_by_name(DEMO_SUPPLIER) is None:
            await create_supplier(
                session,
                clock,
                name=DEMO_SUPPLIER,
                kind="simulator",
                options={"dlr_delay_ms": 500, "delivery_ratio": 0.9},
            )
        await create_route(session, clock, type_="sms", supplier=DEMO_SUPPLIER)
    await import_prices(session, countries, demo_price_csv())
    client = await ClientRepository(session).get_by_name(DEMO_CLIENT)
    if client is None:
        created = await create_client(session, clock, name=DEMO_CLIENT, balance=Decimal(100))
        return DemoKeys(created.client.id, created.live_key, created.test_key)
    await ApiKeyRepository(session).revoke_all(client.id, clock.now())
    return DemoKeys(
        client.id,
        await issue_key(session, clock, client.id, KeyKind.LIVE),
        await issue_key(session, clock, client.id, KeyKind.TEST),
    )
