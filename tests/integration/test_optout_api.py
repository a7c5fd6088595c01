"""/rest/optout with the client's key, and the client API refusing opted-out numbers: a
single SMS whole (33), a batch (`phones`, `individual`) per number with the rest stored,
Viber per recipient (53); the refused numbers never charged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_viber_api import balance_of, build_viber_world, viber_request
from tests.integration.test_viber_fallback import messages_by_channel, run_worker, send_one
from tests.support import api_client, build_world
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.messages.models import Message
from tidings.optouts.service import add_numbers

A, B, C = "380972000001", "380972000002", "380972000003"


async def test_the_list_over_the_api(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    live = {"X-API-KEY": world.live_key}
    async with api_client(database_url, clock) as api:
        added = await api.post("/rest/optout", json={"msisdns": ["+" + A, "00" + B]}, headers=live)
        assert added.status_code == 200
        assert added.json() == {
            "error": "0",
            "result": [{"msisdn": A, "status": "added"}, {"msisdn": B, "status": "added"}],
        }
        again = await api.post("/optout", json={"msisdn": int(A)}, headers=live)  # short form
        assert again.json()["result"] == [{"msisdn": A, "status": "listed"}]
        page = (await api.get("/rest/optout?limit=1", headers=live)).json()
        assert [(o["msisdn"], o["source"]) for o in page["optouts"]] == [(A, "api")]
        assert page["optouts"][0]["created_at"] == "2026-03-01 12:00:00"
        assert page["next"] == A
        rest = (await api.get(f"/rest/optout?after={A}", headers=live)).json()
        assert [o["msisdn"] for o in rest["optouts"]] == [B] and rest["next"] is None
        one = (await api.get(f"/rest/optout/+{B}", headers=live)).json()
        assert one["opted_out"] is True and one["msisdn"] == B
        removed = await api.delete(f"/rest/optout/{B}", headers=live)
        assert removed.json()["result"] == [{"msisdn": B, "status": "removed"}]
        gone = await api.request("DELETE", "/rest/optout", json={"msisdns": [A, C]}, headers=live)
        assert gone.json()["result"] == [
            {"msisdn": A, "status": "removed"},
            {"msisdn": C, "status": "not_listed"},
        ]
        assert (await api.get(f"/rest/optout/{A}", headers=live)).json() == {
            "error": "0",
            "msisdn": A,
            "opted_out": False,
        }


async def test_optout_errors_are_seed_004s(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    live = {"X-API-KEY": world.live_key}
    async with api_client(database_url, clock) as api:
        cases: list[tuple[httpx.Response, str, int]] = [
            (await api.get("/rest/optout"), "1", 401),
            (await api.post("/rest/optout", json={"msisdn": "12"}, headers=live), "21", 400),
            (
                await api.post("/rest/optout", json={"msisdns": [A, "x"]}, headers=live),
                "21",
                400,
            ),
            (await api.post("/rest/optout", json={"phone": A}, headers=live), "2", 400),
            (await api.post("/rest/optout", json=[A], headers=live), "24", 400),
            (await api.get("/rest/optout?limit=0", headers=live), "7", 400),
            (await api.delete("/rest/optout/abc", headers=live), "21", 400),
        ]
        for response, code, status in cases:
            assert (response.json()["error"], response.status_code) == (code, status), (
                response.json()
            )
            assert response.json()["errorDescription"]
        # A refused list adds nothing, not even its valid numbers.
        assert (await api.get("/rest/optout", headers=live)).json()["optouts"] == []


async def test_test_keys_are_checked_and_change_nothing(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    test = {"X-API-KEY": world.test_key}
    async with api_client(database_url, clock) as api:
        added = await api.post("/rest/optout", json={"msisdn": A}, headers=test)
        assert added.json()["result"] == [{"msisdn": A, "status": "added"}]
        assert (await api.post("/rest/optout", json={"msisdn": "1"}, headers=test)).json()[
            "error"
        ] == "21"
        live = {"X-API-KEY": world.live_key}
        assert (await api.get("/rest/optout", headers=live)).json()["optouts"] == []
        assert (await api.get("/rest/optout", headers=test)).json()["optouts"] == []


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def test_sms_to_opted_out_numbers_single_bulk_and_individual(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    live = {"X-API-KEY": world.live_key}
    async with transaction(sessions) as session:
        await add_numbers(session, world.client_id, [B], source="api", now=clock.now())
    single = {"destination": "phone", "msisdn": B, "reference": "s1", "originator": "shop"}
    async with api_client(database_url, clock) as api:
        refused = await api.post("/rest/sms/create", json={**single, "body": "hi"}, headers=live)
        assert refused.status_code == 400
        assert refused.json()["error"] == "33"
        assert refused.json()["errorDescription"].startswith(
            "Recipient has opted out: 380972000002"
        )
        bulk = {
            "destination": "phones",
            "phones": [{"msisdn": n, "reference": f"b{i}"} for i, n in enumerate((A, B, C))],
            "originator": "shop",
            "body": "Sale!",
        }
        answer = (await api.post("/rest/sms/create", json=bulk, headers=live)).json()
        individual = {
            "destination": "individual",
            "phones": [
                {"msisdn": n, "reference": f"i{i}", "originator": "shop", "body": f"Hi {i}"}
                for i, n in enumerate((B, C))
            ],
        }
        second = (await api.post("/rest/sms/create", json=individual, headers=live)).json()
    assert answer["error"] == "0" and answer["totalprice"] == "0.04" and answer["task_id"]
    ok: dict[str, Any] = {"error": "0", "price": "0.02", "currency": "EUR"}
    assert [{k: v for k, v in r.items() if k != "id"} for r in answer["result"]] == [
        {"reference": "b0", **ok},
        {
            "reference": "b1",
            "msisdn": B,
            "error": "33",
            "errorDescription": f"Recipient has opted out: phones[1]: {B} has opted out of "
            "this client's messages",
        },
        {"reference": "b2", **ok},
    ]
    assert [r["error"] for r in second["result"]] == ["33", "0"]
    assert second["totalprice"] == "0.02"
    assert await _count(sessions) == 3  # A and C of the bulk, C of the individual
    assert await balance_of(sessions, world.client_id) == Decimal("9.94")


async def test_viber_to_opted_out_numbers(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock)
    async with transaction(sessions) as session:
        await add_numbers(session, vw.world.client_id, [B], source="api", now=clock.now())
    async with api_client(database_url, clock) as api:
        one = await api.post("/rest/viber/create", json=viber_request(B), headers=vw.key)
        assert (one.status_code, one.json()["error"]) == (400, "53")
        many = await api.post("/rest/viber/create", json=viber_request(A, B, C), headers=vw.key)
    [body] = many.json()
    assert body["total_price"] == "0.02"
    assert [m.get("error", "0") for m in body["messages"]] == ["0", "53", "0"]
    assert body["messages"][1]["msisdn"] == B and body["messages"][1]["reference"] == "v1"
    assert "messages[0].to[1]" in body["messages"][1]["errorDescription"]
    assert await _count(sessions) == 2
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.98")


async def test_a_viber_fallback_to_a_number_that_opted_out_meanwhile_is_not_sent(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"non_users": A})
    alternative = {"sms": {"text": "Hello over SMS", "originator": "MyShop", "validity": 300}}
    viber_id = await send_one(database_url, vw, clock, options=alternative)
    async with transaction(sessions) as session:  # STOP arrives after the Viber message went
        await add_numbers(session, vw.world.client_id, [A], source="keyword", now=clock.now())
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    [sms] = found["sms"]
    assert (sms.status, sms.price, sms.parent_id) == ("failed", Decimal(0), viber_id)
    assert sms.status_detail == (
        "fallback SMS not sent: the number opted out of this client's messages"
    )
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.99")  # Viber only
