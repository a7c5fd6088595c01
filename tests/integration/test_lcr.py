"""Supplier costs, least-cost routing by network, HLR routing, margins and `routes explain`."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_delivery import ScriptedConnector
from tidings.accounts.service import Caller, KeyKind, create_client
from tidings.billing.service import import_prices
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.worker import SupplierLane, WorkerOptions
from tidings.errors import InvalidRequest
from tidings.hlr.models import HlrLookup
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.models import Message
from tidings.messages.storing import accept_sms
from tidings.numbering import CountryTable, InvalidMsisdn, parse_msisdn
from tidings.routing.cache import PlanCache
from tidings.routing.costs import import_costs, set_rate
from tidings.routing.explain import explain_route
from tidings.routing.health import ensure_rows
from tidings.routing.margins import MarginRepository, summarize
from tidings.routing.models import Supplier, SupplierHealth
from tidings.routing.service import create_route, create_supplier

PRICES = """type,tariff,country,price,currency
sms,0,UA,0.02,EUR
sms,0,PL,0.03,EUR
sms,0,DE,0.05,EUR
"""
KYIVSTAR = "380971234567"  # 25503
VODAFONE = "380501234567"  # 25501
_refs = itertools.count()


async def setup(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    costs: str,
    *,
    hlr_routing: bool = False,
    balance: str = "100",
) -> tuple[int, dict[str, int]]:
    async with transaction(sessions) as session:
        await import_prices(session, CountryTable.load(), PRICES)
        client = await create_client(session, clock, name="reseller", balance=Decimal(balance))
        ids = {}
        for name in ("a", "b"):
            supplier = await create_supplier(session, clock, name=name, kind="simulator")
            ids[name] = supplier.id
            await create_route(
                session,
                clock,
                type_="sms",
                supplier=name,
                country="UA",
                priority=10 if name == "a" else 5,
                strategy="lcr",
                hlr_routing=hlr_routing,
            )
        await import_costs(session, CountryTable.load(), costs)
    return client.client.id, ids


async def send(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client_id: int,
    numbers: list[str],
) -> list[Message]:
    items = [SmsItem(n, f"r{next(_refs)}", "test", "hello") for n in numbers]
    request = SmsRequest(destination="phones" if len(items) > 1 else "phone", items=items)
    caller = Caller(client_id=client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with transaction(sessions) as session:
        accepted = await accept_sms(session, clock, caller, request, Limits(max_batch_size=2000))
    async with sessions() as session:
        found = [await session.get(Message, item.id) for item in accepted.items]
    assert all(m is not None for m in found)
    return found  # type: ignore[return-value]


COSTS = """supplier,type,country,mcc,mnc,cost,currency
a,sms,UA,255,03,0.010,EUR
b,sms,UA,255,03,0.008,EUR
a,sms,UA,,,0.005,EUR
b,sms,UA,,,0.009,EUR
"""


async def test_lcr_picks_the_cheapest_for_the_numbers_network(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    client_id, ids = await setup(sessions, clock, COSTS)
    kyivstar, vodafone = await send(sessions, clock, client_id, [KYIVSTAR, VODAFONE])
    assert kyivstar.supplier_id == ids["b"]  # 0.008 on b beats 0.010 on a for 25503
    assert kyivstar.cost == Decimal("0.008") and kyivstar.cost_currency == "EUR"
    assert vodafone.supplier_id == ids["a"]  # no network row: the country's, a is cheaper
    assert vodafone.cost == Decimal("0.005")


async def test_costs_in_another_currency_compare_through_the_rates(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    costs = COSTS.replace("b,sms,UA,255,03,0.008,EUR", "b,sms,UA,255,03,0.0105,USD")
    client_id, ids = await setup(sessions, clock, costs)
    async with transaction(sessions) as session:
        await set_rate(session, "EUR", "USD", "1.08", clock.now())
    [message] = await send(sessions, clock, client_id, [KYIVSTAR])
    # 0.0105 USD = 0.009722 EUR < 0.010 EUR; the cost is kept in the price's currency.
    assert message.supplier_id == ids["b"]
    assert message.cost == Decimal("0.009722") and message.cost_currency == "EUR"


async def test_a_ported_number_goes_by_its_hlr_networks_cheapest_supplier(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    costs = COSTS + "a,sms,UA,255,01,0.004,EUR\nb,sms,UA,255,01,0.007,EUR\n"
    client_id, ids = await setup(sessions, clock, costs, hlr_routing=True)
    ported = "380971111111"  # a Kyivstar range, but ported to Vodafone (25501)
    async with transaction(sessions) as session:
        session.add(hlr_result(client_id, ported, "25501", clock.now() - timedelta(hours=1)))
        # An older result said Kyivstar: the latest wins.
        session.add(hlr_result(client_id, ported, "25503", clock.now() - timedelta(days=2)))
        # A result past its TTL does not count.
        session.add(
            hlr_result(client_id, "380972222222", "25501", clock.now() - timedelta(days=30))
        )
    moved, stale, plain = await send(sessions, clock, client_id, [ported, "380972222222", KYIVSTAR])
    assert moved.supplier_id == ids["a"] and moved.cost == Decimal("0.004")
    assert stale.supplier_id == ids["b"] and plain.supplier_id == ids["b"]
    async with transaction(sessions) as session:
        explained = await explain_route(session, clock, client_id=client_id, msisdn=ported)
    assert explained["chosen"] == "a" and explained["network"] == "25501"
    assert explained["network_from"] == "hlr"


def hlr_result(client_id: int, msisdn: str, network: str, at: object) -> HlrLookup:
    return HlrLookup(
        client_id=client_id,
        msisdn=msisdn,
        country="UA",
        reference=f"h{next(_refs)}",
        tariff=0,
        price=Decimal("0.002"),
        currency="EUR",
        source="api",
        status="active",
        network=network,
        ported=True,
        roaming=False,
        created_at=at,
        status_at=at,
        attempts=0,
    )


async def test_ties_go_by_priority_and_unknown_costs_go_last(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    costs = (
        "supplier,type,country,mcc,mnc,cost,currency\na,sms,UA,,,0.01,EUR\nb,sms,UA,,,0.01,EUR\n"
    )
    client_id, ids = await setup(sessions, clock, costs)
    [message] = await send(sessions, clock, client_id, [KYIVSTAR])
    assert message.supplier_id == ids["a"]  # the same cost: priority 10 beats 5
    async with transaction(sessions) as session:
        await import_costs(
            session,
            CountryTable.load(),
            "supplier,type,country,mcc,cost,currency\nb,sms,UA,255,0.02,EUR\n",
        )
        explained = await explain_route(session, clock, client_id=client_id, msisdn=KYIVSTAR)
    assert [c["supplier"] for c in explained["candidates"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("nobody,sms,UA,255,03,0.01,EUR", "no supplier"),
        ("a,fax,UA,255,03,0.01,EUR", "type"),
        ("a,sms,UA,260,03,0.01,EUR", "mcc 260"),
        ("a,sms,UA,,03,0.01,EUR", "needs its mcc"),
        ("a,sms,UA,255,03,-1,EUR", "cost"),
        ("a,sms,UA,255,03,0.0000001,EUR", "6 decimals"),
        ("a,sms,UA,255,03,0.01,EURO", "currency"),
    ],
)
async def test_a_bad_cost_line_is_refused_with_its_line_number(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, line: str, problem: str
) -> None:
    await setup(sessions, clock, COSTS)
    with pytest.raises(InvalidRequest, match=f"line 2: .*{problem}"):
        async with transaction(sessions) as session:
            await import_costs(
                session,
                CountryTable.load(),
                f"supplier,type,country,mcc,mnc,cost,currency\n{line}\n",
            )


async def test_margins_sum_exactly_per_message_and_in_total(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    client_id, ids = await setup(sessions, clock, COSTS)
    numbers = [f"3809{op}{i:07d}" for op in (7, 5) for i in range(1, 8)]
    sent = await send(sessions, clock, client_id, numbers)
    for name in ("a", "b"):
        async with sessions() as session:
            supplier = await session.get(Supplier, ids[name])
        assert supplier is not None
        lane = SupplierLane(
            supplier, ScriptedConnector(ids[name]), sessions, clock, WorkerOptions()
        )
        await lane.step()
    await send(sessions, clock, client_id, ["380971230000"])  # never sent: not counted
    since, until = clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=1)
    async with sessions() as session:
        margins = MarginRepository(session)
        rows = await margins.totals(since, until)
        per_message = [row async for row in margins.messages(since, until, batch=5)]
    assert len(per_message) == len(sent) == 14
    total_price = sum((r["price"] for r in per_message), Decimal(0))
    total_cost = sum((r["cost"] for r in per_message), Decimal(0))
    total_margin = sum((r["margin"] for r in per_message), Decimal(0))
    assert total_price == Decimal("0.28") and total_cost == Decimal("7") * Decimal(
        "0.008"
    ) + Decimal("7") * Decimal("0.005")
    by_supplier = summarize(rows, "supplier")
    assert sum((r["margin"] for r in by_supplier), Decimal(0)) == total_margin
    assert sum((r["cost"] for r in by_supplier), Decimal(0)) == total_cost
    assert total_margin == total_price - total_cost
    assert {r["supplier"]: r["messages"] for r in by_supplier} == {"a": 7, "b": 7}
    by_client = summarize(rows, "client")
    assert by_client[0]["margin"] == total_margin


def random_numbers(count: int, seed: int = 17) -> list[str]:
    """Valid mobile numbers of UA (three networks), PL and DE, none twice."""
    rng = random.Random(seed)
    prefixes = ["38097", "38067", "38050", "38066", "38063", "38093", "4850", "4860", "4988"]
    prefixes += ["49151", "49160", "49176"]
    found: set[str] = set()
    while len(found) < count:
        prefix = rng.choice(prefixes)
        width = 12 - len(prefix) if prefix.startswith("380") else 11 - len(prefix)
        if prefix.startswith("49"):
            width = 13 - len(prefix)
        number = prefix + "".join(rng.choice("0123456789") for _ in range(width))
        try:
            found.add(parse_msisdn(number).msisdn)
        except InvalidMsisdn:
            continue
    return sorted(found)


async def test_explain_matches_the_actual_choice_for_1000_random_numbers(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    costs = COSTS + (
        "a,sms,UA,255,01,0.004,EUR\nb,sms,UA,255,06,0.003,EUR\n"
        "c,sms,PL,,,0.02,EUR\nd,sms,PL,260,02,0.01,EUR\nd,sms,PL,,,0.025,EUR\n"
    )
    async with transaction(sessions) as session:
        for name in ("c", "d", "e"):
            await create_supplier(session, clock, name=name, kind="simulator")
    client_id, ids = await setup(sessions, clock, "supplier,type,country,mcc,mnc,cost,currency\n")
    async with transaction(sessions) as session:
        await import_costs(session, CountryTable.load(), costs)
        for name in ("c", "d"):
            await create_route(
                session, clock, type_="sms", supplier=name, country="PL", strategy="lcr"
            )
        await create_route(session, clock, type_="sms", supplier="e", prefix="4860", priority=1)
        await create_route(session, clock, type_="sms", supplier="d", priority=3)
        await create_route(session, clock, type_="sms", supplier="e", priority=7)
        all_ids = {s.name: s.id for s in (await session.execute(select(Supplier))).scalars()}
        await ensure_rows(session, sorted(all_ids.values()), clock.now())
        # e is out of routing: its routes' numbers go to the next candidate.
        health = await session.get(SupplierHealth, all_ids["e"])
        assert health is not None
        health.state, health.probe_at = "open", clock.now() + timedelta(minutes=5)
    numbers = random_numbers(1000)
    messages = await send(sessions, clock, client_id, numbers)
    chosen = {m.msisdn: m.supplier_id for m in messages}
    async with sessions() as session:
        for number in numbers:
            explained = await explain_route(session, clock, client_id=client_id, msisdn=number)
            assert explained["chosen_id"] == chosen[number], (number, explained)
    used = set(chosen.values())
    assert {ids["a"], ids["b"], all_ids["c"], all_ids["d"]} <= used
    assert all_ids["e"] not in used


async def test_plan_cache_sees_a_new_cost_after_its_ttl(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await setup(sessions, clock, COSTS)
    cache = PlanCache(sessions, clock, ttl=60)
    plan = await cache.get()
    assert plan.costs.cost(1, "sms", "UA", "25503") is not None
    assert await cache.get() is plan
    cache.invalidate()
    assert await cache.get() is not plan
