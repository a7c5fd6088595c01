"""The demo set-up `make run` starts with: a client, a price list, a simulator supplier."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ApiKeyRepository, ClientRepository
from tidings.accounts.service import KeyKind, create_client, hash_key, issue_key
from tidings.billing.service import import_prices
from tidings.clock import Clock
from tidings.numbering import CountryTable
from tidings.operators.repository import ConsoleSecretRepository
from tidings.routing.repository import RouteRepository, SupplierRepository
from tidings.routing.service import create_route, create_supplier
from tidings.viber.service import register_sender

DEMO_CLIENT = "demo"
DEMO_SUPPLIER = "simulator"
DEMO_HLR_SUPPLIER = "hlr-simulator"
DEMO_VIBER_SUPPLIER = "viber-simulator"
DEMO_VIBER_SENDER = "Tidings"  # the demo client's registered Viber alpha name

# The demo keys are shown on every start, so they are kept in the clear — in the table of
# secrets the gateway made for itself — besides their hashes in api_keys. Only the demo's.
_LIVE_KEY_NAME = "demo_live_key"
_TEST_KEY_NAME = "demo_test_key"

# The demo simulator delivers everything, so the README's first message always ends
# `delivered`; failures are one option away (README "Simulator options", delivery_ratio).
DEMO_SIMULATOR_OPTIONS = {"dlr_delay_ms": 500}
# What earlier versions set up: a demo simulator still on exactly these is brought up to date.
_OLD_DEMO_SIMULATOR_OPTIONS = {"dlr_delay_ms": 500, "delivery_ratio": 0.9}


@dataclass(frozen=True, slots=True)
class DemoKeys:
    client_id: int
    live_key: str
    test_key: str


def demo_price_csv() -> str:
    return resources.files("tidings.demo").joinpath("prices.csv").read_text("utf-8")


async def ensure_demo(
    session: AsyncSession, clock: Clock, countries: CountryTable, *, rotate: bool = False
) -> DemoKeys:
    """Create what is missing and return the demo keys: the same ones every time, until
    `rotate` revokes them and issues new ones (`tidings demo --rotate-keys`)."""
    if not await RouteRepository(session).list():
        if await SupplierRepository(session).get_by_name(DEMO_SUPPLIER) is None:
            await create_supplier(
                session,
                clock,
                name=DEMO_SUPPLIER,
                kind="simulator",
                options=dict(DEMO_SIMULATOR_OPTIONS),
            )
        await create_route(session, clock, type_="sms", supplier=DEMO_SUPPLIER)
    simulator = await SupplierRepository(session).get_by_name(DEMO_SUPPLIER)
    if simulator is not None and simulator.options == _OLD_DEMO_SIMULATOR_OPTIONS:
        simulator.options = dict(DEMO_SIMULATOR_OPTIONS)
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
    secrets = ConsoleSecretRepository(session)
    client = await ClientRepository(session).get_by_name(DEMO_CLIENT)
    if client is None:
        created = await create_client(session, clock, name=DEMO_CLIENT, balance=Decimal(100))
        await register_sender(session, clock, created.client.id, DEMO_VIBER_SENDER)
        keys = DemoKeys(created.client.id, created.live_key, created.test_key)
    else:
        await register_sender(session, clock, client.id, DEMO_VIBER_SENDER)
        kept = None if rotate else await _kept_keys(session, client.id)
        if kept is not None:
            return kept
        await ApiKeyRepository(session).revoke_all(client.id, clock.now())
        keys = DemoKeys(
            client.id,
            await issue_key(session, clock, client.id, KeyKind.LIVE),
            await issue_key(session, clock, client.id, KeyKind.TEST),
        )
    await secrets.put(_LIVE_KEY_NAME, keys.live_key, clock.now())
    await secrets.put(_TEST_KEY_NAME, keys.test_key, clock.now())
    return keys


async def _kept_keys(session: AsyncSession, client_id: int) -> DemoKeys | None:
    """The stored demo keys, if both are still the demo client's and not revoked."""
    secrets = ConsoleSecretRepository(session)
    live = await secrets.get(_LIVE_KEY_NAME)
    test = await secrets.get(_TEST_KEY_NAME)
    if live is None or test is None:
        return None
    keys = ApiKeyRepository(session)
    for raw in (live, test):
        found = await keys.find_active(hash_key(raw))
        if found is None or found[1].id != client_id:
            return None
    return DemoKeys(client_id, live, test)
