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
from tidings.viber.service import register_sender

DEMO_CLIENT = "demo"
DEMO_SUPPLIER = "simulator"
DEMO_HLR_SUPPLIER = "hlr-simulator"
DEMO_VIBER_SUPPLIER = "viber-simulator"
DEMO_VIBER_SENDER = "Tidings"  # the demo client's registered Viber alpha name


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
    if not any(route.type == "hlr" for route in await RouteRepository(session).list()):
        if await SupplierRepository(session).get_by_name(DEMO_HLR_SUPPLIER) is None:
            await create_supplier(session, clock, name=DEMO_HLR_SUPPLIER, kind="hlr_simulator")
        await create_route(session, clock, type_="hlr", supplier=DEMO_HLR_SUPPLIER)
    if not any(route.type == "viber" for route in await RouteRepository(session).list()):
        if await SupplierRepository(session).get_by_name(DEMO_VIBER_SUPPLIER) is None:
            # A third of numbers have no Viber account, so the SMS fallback shows too.
            await create_supplier(
                session,
                clock,
                name=DEMO_VIBER_SUPPLIER,
                kind="viber_simulator",
                options={"dlr_delay_ms": 500, "read_delay_ms": 2000, "non_user_ratio": 0.3},
            )
        await create_route(session, clock, type_="viber", supplier=DEMO_VIBER_SUPPLIER)
    await import_prices(session, countries, demo_price_csv())
    client = await ClientRepository(session).get_by_name(DEMO_CLIENT)
    if client is None:
        created = await create_client(session, clock, name=DEMO_CLIENT, balance=Decimal(100))
        await register_sender(session, clock, created.client.id, DEMO_VIBER_SENDER)
        return DemoKeys(created.client.id, created.live_key, created.test_key)
    await register_sender(session, clock, client.id, DEMO_VIBER_SENDER)
    await ApiKeyRepository(session).revoke_all(client.id, clock.now())
    return DemoKeys(
        client.id,
        await issue_key(session, clock, client.id, KeyKind.LIVE),
        await issue_key(session, clock, client.id, KeyKind.TEST),
    )
