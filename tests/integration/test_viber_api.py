"""Seed 004's Viber API on each database: create, status, prices, and every Viber error code."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import PRICES_CSV, World, api_client, build_world
from tidings.accounts.models import Client
from tidings.billing.service import import_prices
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.messages.models import Message
from tidings.numbering import CountryTable
from tidings.routing.service import create_route, create_supplier
from tidings.viber.models import ViberContent
from tidings.viber.service import register_sender

# The seed's example, with its placeholder date left out and its validity in range (the
# verbatim example is tested below: its "validity": 24 is refused, see docs/viber.md).
SEED_CREATE: dict[str, Any] = {
    "tariff": 0,
    "messages": [
        {
            "to": [
                {"msisdn": "380972920283", "external_id": "example_12"},
                {"msisdn": "380972920282", "external_id": "example_13"},
            ],
            "text": "My Viber messages is shinier than your SMS messages",
            "callback_url": "https://my-cool-webpage.com/viber-dlr",
            "alpha_name": "My Company",
            "is_promotional": False,
            "options": {
                "viber": {
                    "img": "http://my-cool-webpage.com/logo.png",
                    "caption": "Join us!",
                    "action": "http://my-cool-webpage.com",
                }
            },
        }
    ],
}


@dataclass(frozen=True)
class ViberWorld:
    world: World
    viber_supplier_id: int

    @property
    def key(self) -> dict[str, str]:
        return {"X-API-KEY": self.world.live_key}


async def build_viber_world(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    *,
    viber_options: dict[str, Any] | None = None,
    sms_options: dict[str, Any] | None = None,
    balance: Decimal = Decimal("10"),
    senders: tuple[str, ...] = ("My Company",),
) -> ViberWorld:
    """An SMS world plus a Viber simulator, a Viber route and registered alpha names."""
    world = await build_world(sessions, clock, balance=balance, supplier_options=sms_options)
    async with transaction(sessions) as session:
        await import_prices(session, CountryTable.load(), PRICES_CSV + "viber,9,UA,0.012,EUR\n")
        supplier = await create_supplier(
            session, clock, name="viber-sim", kind="viber_simulator", options=viber_options or {}
        )
        await create_route(session, clock, type_="viber", supplier=supplier.name)
        for name in senders:
            await register_sender(session, clock, world.client_id, name)
    return ViberWorld(world, supplier.id)


def viber_request(*phones: str, **item: Any) -> dict[str, Any]:
    """A one-message request to `phones` (external ids v0, v1, …)."""
    message = {
        "to": [{"msisdn": phone, "external_id": f"v{i}"} for i, phone in enumerate(phones)],
        "text": "Hello over Viber",
        "alpha_name": "My Company",
        **item,
    }
    return {"messages": [message]}


async def create(api: httpx.AsyncClient, vw: ViberWorld, body: Any) -> Any:
    response = await api.post("/rest/viber/create", json=body, headers=vw.key)
    return response.json()


async def settle(worker: DeliveryWorker, *, until: set[str] | None = None) -> None:
    """Step every lane (and let reports land) until no message is waiting or in flight."""
    open_statuses = until or {"queued", "scheduled", "sent"}
    for _ in range(500):
        for lane in list(worker.lanes.values()):
            await lane.step()
        await asyncio.sleep(0.01)
        # Receipts that raced their submit answer (two transactions at once on PostgreSQL)
        # are matched by the sweeper, as in production.
        await worker.sweep()
        async with worker.sessions() as session:
            waiting = await session.scalar(
                select(func.count()).select_from(Message).where(Message.status.in_(open_statuses))
            )
        if waiting == 0:
            return
    raise AssertionError("messages did not settle")


async def balance_of(sessions: async_sessionmaker[AsyncSession], client_id: int) -> Decimal:
    async with sessions() as session:
        client = await session.get(Client, client_id)
        assert client is not None
        return client.balance


async def test_seed_create_example_answers_in_the_seeds_shape(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await api.put("/rest/viber/create", json=SEED_CREATE, headers=vw.key)
        assert response.status_code == 200, response.json()
        body = response.json()
        ids = [m["id"] for m in body[0]["messages"]]
        assert body == [
            {
                "error": "0",
                "messages": [
                    {"id": ids[0], "reference": "example_12", "price": "0.01", "currency": "EUR"},
                    {"id": ids[1], "reference": "example_13", "price": "0.01", "currency": "EUR"},
                ],
                "total_price": "0.02",
                "currency": "EUR",
            }
        ]
        # Also without /rest, and a recipient without external_id gets no reference.
        plain = await api.post(
            "/viber/create",
            json={"messages": [{**SEED_CREATE["messages"][0], "to": [{"msisdn": "380972920284"}]}]},
            headers=vw.key,
        )
        [answer] = plain.json()
        assert list(answer["messages"][0]) == ["id", "price", "currency"]
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.97")
    async with sessions() as session:
        message = await session.get(Message, int(ids[0]))
        content = await session.get(ViberContent, int(ids[0]))
    assert message is not None and content is not None
    assert (message.channel, message.originator, message.reference) == (
        "viber",
        "My Company",
        "example_12",
    )
    assert message.body == "My Viber messages is shinier than your SMS messages"
    assert message.callback_url == "https://my-cool-webpage.com/viber-dlr"
    assert (content.img, content.caption, content.action) == (
        "http://my-cool-webpage.com/logo.png",
        "Join us!",
        "http://my-cool-webpage.com",
    )
    assert content.ttl_seconds == 86_400 and content.is_promotional is False
    assert (message.expires_at - message.time_in).total_seconds() == 86_400


async def test_seed_example_verbatim_needs_only_a_real_date(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """The example's "validity": 24 is 24 seconds by the rule (15-86400), not 24 hours."""
    vw = await build_viber_world(sessions, clock)
    verbatim = copy.deepcopy(SEED_CREATE)
    verbatim["validity"] = 24
    verbatim["tariff"] = 9
    verbatim["messages"][0]["scheduledDatetime"] = "ISO 8601 date"
    async with api_client(database_url, clock) as api:
        response = await api.put("/rest/viber/create", json=verbatim, headers=vw.key)
        assert (response.status_code, response.json()["error"]) == (400, "10")
        verbatim["messages"][0]["scheduledDatetime"] = "2026-03-01T13:00:00+00:00"
        response = await api.put("/rest/viber/create", json=verbatim, headers=vw.key)
        [answer] = response.json()
        assert answer["total_price"] == "0.024"  # tariff 9's Viber price, twice
        message_id = int(answer["messages"][0]["id"])
        status = (await api.get(f"/rest/viber/{message_id}", headers=vw.key)).json()
        assert status["status"] == "scheduled"
    async with sessions() as session:
        message = await session.get(Message, message_id)
    assert message is not None and message.send_at is not None
    assert (message.expires_at - message.send_at).total_seconds() == 24


async def test_status_by_id_and_reference_in_the_seeds_shape(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"read_ratio": 1})
    async with api_client(database_url, clock) as api:
        created = await create(api, vw, viber_request("380972000000"))
        message_id = created[0]["messages"][0]["id"]
        queued = (await api.get(f"/rest/viber/{message_id}", headers=vw.key)).json()
        assert queued["status"] == "accepted"
        worker = DeliveryWorker(sessions, clock, WorkerOptions(poll_interval=0.01))
        await worker.refresh_suppliers()
        try:
            await settle(worker, until={"queued", "sent", "delivered"})
        finally:
            await worker.stop()
        status = (await api.get(f"/rest/viber/{message_id}", headers=vw.key)).json()
        assert status == {
            "error": "0",
            "id": message_id,
            "msisdn": "380972000000",
            "reference": "v0",
            "time_in": "2026-03-01 12:00:00",
            "time_sent": "2026-03-01 12:00:00",
            "time_dr": "2026-03-01 12:00:00",
            "status": "read",
            "price": "0.01",
            "currency": "EUR",
            "message_type": "viber",
        }
        assert (await api.get("/rest/viber/reference/v0", headers=vw.key)).json() == status
        assert (await api.get(f"/viber/{message_id}", headers=vw.key)).json() == status
    async with sessions() as session:
        events = (await session.scalars(select(Message.status))).all()
    assert events == ["read"]


async def test_price_and_price_tables(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        price = await api.put("/rest/viber/price", json=SEED_CREATE, headers=vw.key)
        assert price.json() == {"error": "0", "totalprice": "0.02", "currency": "EUR"}
        table = (await api.get("/rest/viber/prices/0", headers=vw.key)).json()
        assert table == {
            "error": "0",
            "prices": [
                {
                    "type": "viber",
                    "country": "UA",
                    "country_name": "Ukraine",
                    "mcc": "255",
                    "price": "0.01",
                    "currency": "EUR",
                }
            ],
        }
        assert (await api.get("/viber/prices", headers=vw.key)).json() == table
        missing = await api.get("/rest/viber/prices/5", headers=vw.key)
        assert missing.json()["error"] == "6"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_test_keys_get_prices_and_made_up_ids_and_store_nothing(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock)
    test_key = {"X-API-KEY": vw.world.test_key}
    async with api_client(database_url, clock) as api:
        created = (await api.put("/rest/viber/create", json=SEED_CREATE, headers=test_key)).json()
        assert created[0]["total_price"] == "0.02"
        assert [m["reference"] for m in created[0]["messages"]] == ["example_12", "example_13"]
        status = (await api.get("/rest/viber/123", headers=test_key)).json()
        assert status["id"] == "123" and status["error"] == "0"
        unregistered = viber_request("380972000000", alpha_name="Stranger")
        refused = await api.put("/rest/viber/create", json=unregistered, headers=test_key)
        assert refused.json()["error"] == "45"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    assert await balance_of(sessions, vw.world.client_id) == Decimal("10")


def _with(**changes: Any) -> dict[str, Any]:
    body = viber_request("380972000001")
    body["messages"][0].update(changes)
    return body


# Each of the seed's Viber codes (42 and 50 are not published), with a request causing it.
ERROR_CASES: list[tuple[int, int, dict[str, Any]]] = [
    (41, 400, viber_request("12345")),
    (41, 400, _with(to=[{"external_id": "x1"}])),
    (44, 400, {"messages": "not a list"}),
    (44, 400, {"messages": [{**_with()["messages"][0], "to": "380972000001"}]}),
    (44, 400, _with(is_promotional="yes")),
    (45, 400, _with(alpha_name="Not Registered")),
    (45, 400, _with(alpha_name="")),
    (46, 400, _with(text="")),
    (46, 400, _with(text="x" * 1001)),
    (47, 400, _with(to=[{"msisdn": "380972000001", "external_id": "bad id!"}])),
    (48, 400, {**_with(), "validity": 14}),
    (48, 400, {**_with(), "validity": 86_401}),
    (48, 400, {**_with(), "validity": "soon"}),
    (49, 400, _with(options="viber")),
    (49, 400, _with(options={"viber": {"img": "logo.png"}})),
    (49, 400, _with(options={"viber": {"caption": "Join us!"}})),
    (49, 400, _with(options={"viber": {"caption": "x" * 31, "action": "https://a.example"}})),
    (49, 400, _with(options={"sms": {"text": "hi"}})),
    (49, 400, _with(options={"sms": {"text": "hi", "originator": "x", "validity": 10}})),
    (51, 400, viber_request("380972000001", "+380972000001")),
    (6, 400, {**_with(), "tariff": 10}),
    (10, 400, _with(scheduledDatetime="tomorrow")),
]


async def test_every_viber_error_code(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, balance=Decimal("0.015"))
    async with api_client(database_url, clock) as api:
        for code, http_status, body in ERROR_CASES:
            response = await api.post("/rest/viber/create", json=body, headers=vw.key)
            assert (response.status_code, response.json()["error"]) == (http_status, str(code)), (
                body,
                response.json(),
            )
            assert response.json()["errorDescription"]
        # 43: an external_id used before (by this client, on any channel).
        first = await create(api, vw, viber_request("380972000002"))
        assert first[0]["error"] == "0"
        again = await api.post(
            "/rest/viber/create", json=viber_request("380972000003"), headers=vw.key
        )
        assert (again.status_code, again.json()["error"]) == (409, "43")
        twice = viber_request("380972000004", "380972000005")
        twice["messages"][0]["to"][1]["external_id"] = "v0"
        assert (await create(api, vw, twice))["error"] == "43"
        # 40: no such Viber message (and an SMS is not a Viber message).
        for path in ("/rest/viber/999999", "/rest/viber/abc", "/rest/viber/reference/nope"):
            missing = await api.get(path, headers=vw.key)
            assert (missing.status_code, missing.json()["error"]) == (404, "40")
        sms = await api.post(
            "/rest/sms/create",
            json={
                "destination": "phone",
                "msisdn": "380972000009",
                "reference": "s1",
                "originator": "test",
                "body": "hi",
            },
            headers=vw.key,
        )
        assert sms.json()["error"] == "8"  # the balance (0.005 left) does not cover an SMS
        # 8: not enough money for the Viber message itself; 1: a wrong key.
        poor_request = _with(to=[{"msisdn": "380972000006"}, {"msisdn": "380972000007"}])
        poor = await create(api, vw, poor_request)
        assert poor["error"] == "8"
        wrong_key = await api.post(
            "/rest/viber/create", json=_with(), headers={"X-API-KEY": "nope"}
        )
        assert wrong_key.json()["error"] == "1"
        not_json = await api.post(
            "/rest/viber/create", content=b"{", headers={**vw.key, "content-type": "text/json"}
        )
        assert not_json.json()["error"] == "44"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 1
    assert await balance_of(sessions, vw.world.client_id) == Decimal("0.005")
