"""Opt-outs per client in /metrics and in the console, on each database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_console import PASSWORD, _sign_in
from tests.integration.test_metrics import scrape, value
from tests.support import api_client, build_world
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.operators.service import create_operator
from tidings.optouts.service import add_numbers

NUMBERS = ["380972000001", "380972000002", "380972000003"]


async def test_opt_outs_in_metrics_and_console(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    quiet = await build_world(sessions, clock, name="quiet")
    async with transaction(sessions) as session:
        await add_numbers(session, world.client_id, NUMBERS, source="api", now=clock.now())
        await create_operator(session, clock, name="olga", password=PASSWORD)
    bulk = {
        "destination": "phones",
        "phones": [
            {"msisdn": n, "reference": f"r{i}"}
            for i, n in enumerate([*NUMBERS[1:], "380972000009"])
        ],
        "originator": "shop",
        "body": "hi",
    }
    async with api_client(database_url, clock) as http:
        sent = await http.post("/rest/sms/create", json=bulk, headers={"X-API-KEY": world.live_key})
        assert [r["error"] for r in sent.json()["result"]] == ["33", "33", "0"]
        samples = await scrape(http)
        client = str(world.client_id)
        assert value(samples, "tidings_optouts", client_id=client) == 3
        assert ("tidings_optouts", frozenset({("client_id", str(quiet.client_id))})) not in samples
        refusals = value(samples, "tidings_optout_refusals_total", client_id=client, channel="sms")
        assert refusals == 2
        accepted = sum(
            v
            for (name, labels), v in samples.items()
            if name == "tidings_messages_accepted_total" and ("client_id", client) in labels
        )
        assert accepted == 1  # the refused numbers are not counted as accepted

        assert (await _sign_in(http, "olga", PASSWORD)).status_code == 303
        clients = (await http.get("/console/clients")).text
        assert '<td class="num">3</td>' in clients
        page = (await http.get(f"/console/clients/{world.client_id}")).text
        assert '<b id="optout-count">3</b>' in page
        assert all(f"<td>{n}</td>" in page for n in NUMBERS)
        other = (await http.get(f"/console/clients/{quiet.client_id}")).text
        assert "No opt-outs." in other
