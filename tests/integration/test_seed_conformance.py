"""Issue 15's seed walk on each database: seed 000's Viber example (23043), real client
references (seed 000's AD-6640-7006) through every API that takes or shows one, the Hyber
webhook's extra_id, and unknown paths answered in each API's own format."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_viber_api import build_viber_world, create, viber_request
from tests.integration.test_viber_fallback import run_worker
from tests.support import api_client, build_world, issue_dr_login
from tidings.accounts.models import Client
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.webhooks.models import WebhookDelivery

SEED_EXTRA_ID = "AD-6640-7006"  # seed 000's example extra_id
PHONE = "380972000001"

# Seed 000, "GET simple and detailed delivery report of template Viber Message".
SEED_000_VIBER_SIMPLE = {
    "phone_number": "380961111111",
    "last_partner": "viber",
    "extra_id": SEED_EXTRA_ID,
    "status": 2,
    "substatus": 23,
    "hyber_status": 23043,
}


async def _hyber_webhooks(sessions: async_sessionmaker[AsyncSession], client_id: int) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            update(Client)
            .where(Client.id == client_id)
            .values(webhook_format="hyber", callback_url="https://client.example/dr")
        )


async def _pushed(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with sessions() as session:
        bodies = (
            await session.scalars(select(WebhookDelivery.body).order_by(WebhookDelivery.id))
        ).all()
    return [orjson.loads(body) for body in bodies]


async def test_viber_delivered_is_seed_000s_example_in_the_dr_api_and_the_hyber_webhook(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"read_ratio": 0})
    await _hyber_webhooks(sessions, vw.world.client_id)
    body = viber_request(PHONE)
    body["messages"][0]["to"][0]["external_id"] = SEED_EXTRA_ID
    async with api_client(database_url, clock) as api:
        created = await create(api, vw, body)
        assert created[0]["error"] == "0", created
    await run_worker(sessions, clock)
    async with api_client(database_url, clock) as api:
        login, password = await issue_dr_login(sessions, clock, vw.world.client_id)
        base = f"/{vw.world.client_id}/api/dr/external/{SEED_EXTRA_ID}"
        simple = (await api.get(f"{base}/simple", auth=(login, password))).json()
        advanced = (await api.get(f"{base}/advanced", auth=(login, password))).json()
    for name, example in SEED_000_VIBER_SIMPLE.items():
        if name != "phone_number":
            assert simple[name] == example, name
        assert type(simple[name]) is type(example), name
    [report] = advanced["reports"]
    assert (report["hyber_status"], report["last_partner"]) == (23043, "viber")
    assert advanced["delivered_via"] == "viber"
    # The pushed report says what the query says: same codes, same extra_id.
    final = [p for p in await _pushed(sessions) if p["status"] == 2]
    assert final == [simple]


async def test_a_fallback_sms_is_pushed_with_its_viber_messages_extra_id(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"non_users": PHONE})
    await _hyber_webhooks(sessions, vw.world.client_id)
    body = viber_request(PHONE, options={"sms": {"text": "Hi", "originator": "MyShop"}})
    body["messages"][0]["to"][0]["external_id"] = SEED_EXTRA_ID
    async with api_client(database_url, clock) as api:
        assert (await create(api, vw, body))[0]["error"] == "0"
    await run_worker(sessions, clock)
    async with api_client(database_url, clock) as api:
        login, password = await issue_dr_login(sessions, clock, vw.world.client_id)
        simple = (
            await api.get(
                f"/{vw.world.client_id}/api/dr/external/{SEED_EXTRA_ID}/simple",
                auth=(login, password),
            )
        ).json()
    assert simple["last_partner"] == "sms" and simple["extra_id"] == SEED_EXTRA_ID
    pushed = await _pushed(sessions)
    assert {p["last_partner"] for p in pushed} == {"viber", "sms"}
    assert all(p["extra_id"] == SEED_EXTRA_ID for p in pushed), pushed
    assert pushed[-1] == simple


GOOD_REFERENCES = [SEED_EXTRA_ID, "ext_id_19", "order.42:line/7", "a" * 32, "12erdgm9"]
BAD_REFERENCES = ["a b", "a;b", "é", "a" * 33, "a+b", "<x>", ""]


async def test_references_real_clients_use_are_accepted_everywhere(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    key = {"X-API-KEY": world.live_key}
    async with api_client(database_url, clock) as api:
        for n, reference in enumerate(GOOD_REFERENCES):
            sms = {"destination": "phone", "msisdn": f"38097100000{n}", "reference": reference}
            answer = await api.post(
                "/rest/sms/create", json={**sms, "originator": "Shop", "body": "hi"}, headers=key
            )
            assert answer.json()["error"] == "0", (reference, answer.text)
            path = quote(reference, safe="")
            found = await api.get(f"/rest/sms/reference/{path}", headers=key)
            assert found.json()["reference"] == reference, found.text
        login, password = await issue_dr_login(sessions, clock, world.client_id)
        dr = await api.get(
            f"/{world.client_id}/api/dr/external/{quote('order.42:line/7', safe='')}/simple",
            auth=(login, password),
        )
        assert dr.json()["extra_id"] == "order.42:line/7", dr.text
        for n, reference in enumerate(BAD_REFERENCES):
            sms = {"destination": "phone", "msisdn": f"38097200000{n}", "reference": reference}
            answer = await api.post(
                "/rest/sms/create", json={**sms, "originator": "Shop", "body": "hi"}, headers=key
            )
            expected = "22" if reference == "" else "27"  # empty is "missing"
            assert answer.json()["error"] == expected, (reference, answer.text)


async def test_hlr_references_follow_the_same_rule(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    key = {"X-API-KEY": world.live_key}
    async with api_client(database_url, clock) as api:
        good = await api.post(
            "/hlr/create", json={"msisdn": "380505142320", "reference": SEED_EXTRA_ID}, headers=key
        )
        assert good.json()["error"] != "65", good.text
        bad = await api.post(
            "/hlr/create", json={"msisdn": "380505142320", "reference": "a b"}, headers=key
        )
        assert bad.json()["error"] == "65", bad.text


CLIENT_PATHS = [
    "/rest/nothing",
    "/optout/a/b",
    "/rest/sms/nothing/here",
    "/sms/a/b",
    "/hlr/a/b",
    "/hlr/",
    "/rest/%0A",
    "/rest/sms/%0A/%0A",
    "/rest/sms/a%0Ab/c",
    "/sms/%2F%2F",
    "/rest/%2E%2E/%2E%2E/etc",
    "/rest/viber/x/y",
]
DLR_PATHS = ["/api/dlr/x", "/api/dlr/%0A", "/api/dlr/%2E%2E", "/api/mo/x"]
DR_PATHS = [
    "/7/api/dr/1",
    "/7/api/dr/%0A",
    "/7/api/dr/%0A/%0A/simple",
    "/7/api/dr/1/2/3",
    "/7/api/dr/x%2Fy/odd",
]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unknown_paths_answer_in_each_apis_own_format(
    database_url: str, clock: FrozenClock, method: str
) -> None:
    async with api_client(database_url, clock) as api:
        for path in CLIENT_PATHS:
            answer = await api.request(method, path)
            assert answer.status_code == 404, (path, answer.text)
            body = answer.json()
            assert body["error"] == "4" and "errorDescription" in body, (path, body)
            assert "detail" not in body
        for path in DLR_PATHS:
            answer = await api.request(method, path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.headers["content-type"] == "application/vnd.api+json"
            [error] = answer.json()["errors"]
            assert error["code"] == "not_found" and error["title"] == "Not found", path
        for path in DR_PATHS:
            answer = await api.request(method, path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["error"] == "not_found", (path, answer.text)
