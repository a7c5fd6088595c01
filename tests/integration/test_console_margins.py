"""The console's margins page and the suppliers' circuit breakers on its overview."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_console import PASSWORD, _operator, _sign_in
from tests.support import accept_messages, api_client, build_world, send_all
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.numbering import CountryTable
from tidings.routing.costs import import_costs
from tidings.routing.health import ensure_rows
from tidings.routing.margins import MarginRepository, summarize
from tidings.routing.models import SupplierHealth


async def test_margins_per_client_supplier_and_country_match_the_report(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with transaction(sessions) as session:
        await import_costs(
            session,
            CountryTable.load(),
            "supplier,type,country,mcc,mnc,cost,currency\nsim-acme,sms,UA,,,0.005,EUR\n",
        )
        await ensure_rows(session, [world.supplier_id], clock.now())
    await accept_messages(sessions, clock, world, 4)
    await send_all(sessions, clock, world, ["s0", "s1", "s2", "s3"])
    clock.advance(60)
    async with sessions() as session:
        rows = await MarginRepository(session).totals(clock.now() - timedelta(days=1), clock.now())
    [by_client] = summarize(rows, "client")
    assert by_client["messages"] == 4 and by_client["price"] == Decimal("0.08")
    assert by_client["cost"] == Decimal("0.02") and by_client["margin"] == Decimal("0.06")
    async with transaction(sessions) as session:
        health = await session.get(SupplierHealth, world.supplier_id)
        assert health is not None
        health.state, health.reason = "open", "5 failures in a row: ConnectError"
    async with api_client(database_url, clock) as http:
        await _operator(sessions, clock)
        await _sign_in(http, "olga", PASSWORD)
        page = (await http.get("/console/margins?period=week")).text
        overview = (await http.get("/console")).text
    for table in ("margins-client", "margins-supplier", "margins-country"):
        section = page.split(f'id="{table}"')[1].split("</table>")[0]
        assert "0.080000" in section and "0.020000" in section and "0.060000" in section
    assert "<b>last week</b>" in page
    suppliers = overview.split('id="suppliers"')[1].split("</table>")[0]
    assert "out of routing" in suppliers and "5 failures in a row" in suppliers
