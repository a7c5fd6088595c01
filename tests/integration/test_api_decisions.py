"""The decisions docs/api.md writes down where seed 004 disagrees with itself or with seed
000 (issue 15, item 11), one test each, on each database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.hlr_support import build_hlr_world
from tests.integration.test_hlr_worker import accept
from tests.integration.test_viber_api import build_viber_world, create, viber_request
from tests.support import api_client, build_world, issue_dr_login
from tidings.accounts.models import Client
from tidings.clock import FrozenClock
from tidings.hlr.worker import HlrOptions, HlrWorker
from tidings.messages.models import Message, Task
from tidings.numbering import CountryTable
from tidings.webhooks.models import WebhookDelivery


def _sms(**fields: Any) -> dict[str, Any]:
    return {
        "destination": "phone",
        "msisdn": "380972000000",
        "reference": "r1",
        "originator": "Shop",
        "body": "hi",
        **fields,
    }


async def test_an_invalid_msisdn_is_21_never_11(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """The seed's examples say 11 with "Incorrect msisdn"; its table says 21 (and 11 is
    "too many messages in processing"). The table wins."""
    vw = await build_viber_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        sms = await api.post("/rest/sms/create", json=_sms(msisdn="12"), headers=vw.key)
        assert sms.json()["error"] == "21", sms.text
        viber = await create(api, vw, viber_request("12"))
        assert viber["error"] == "41", viber
        hlr = await api.post(
            "/hlr/create", json={"msisdn": "12", "reference": "h1"}, headers=vw.key
        )
        assert hlr.json()["error"] == "61", hlr.text


async def test_stats_filters_use_80_to_86_and_60_stays_hlrs(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    key = {"X-API-KEY": world.live_key}
    async with api_client(database_url, clock) as api:
        bad = await api.post("/rest/stat/create", json={"message_id": ["x1"]}, headers=key)
        assert bad.json()["error"] == "80", bad.text
        # An id that matches nothing is not an error at creation: the export is empty.
        unknown = await api.post("/rest/stat/create", json={"message_id": [987654]}, headers=key)
        assert str(unknown.json()["error"]) == "0", unknown.text
        hlr = await api.get("/hlr/reference/nothing-here", headers=key)
        assert hlr.json()["error"] == "60", hlr.text


async def test_message_ids_are_the_same_integers_in_the_004_and_000_apis(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    key = {"X-API-KEY": world.live_key}
    async with api_client(database_url, clock) as api:
        created = (await api.post("/rest/sms/create", json=_sms(), headers=key)).json()
        message_id = created["id"]
        assert message_id.isdigit()
        login, password = await issue_dr_login(sessions, clock, world.client_id)
        base = f"/{world.client_id}/api/dr"
        simple = (await api.get(f"{base}/{message_id}/simple", auth=(login, password))).json()
        assert simple["message_id"] == message_id
        uuid = await api.get(
            f"{base}/9f60ac8f-e721-5027-b838-e6fcb95fcd7a/simple", auth=(login, password)
        )
        assert uuid.status_code == 404 and uuid.json()["error"] == "not_found"


async def test_viber_send_time_schedules_like_sms(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock)
    later = (clock.now() + timedelta(hours=2)).isoformat()
    async with api_client(database_url, clock) as api:
        created = await create(api, vw, viber_request("380972000001", send_time=later))
        assert created[0]["error"] == "0", created
        viber_id = created[0]["messages"][0]["id"]
        status = (await api.get(f"/rest/viber/{viber_id}", headers=vw.key)).json()
    assert status["status"] == "scheduled"
    async with sessions() as session:
        message = await session.get(Message, int(viber_id))
        assert message is not None and message.send_at == clock.now() + timedelta(hours=2)


async def test_task_ids_and_message_ids_never_collide_so_the_short_form_is_unambiguous(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock, balance=Decimal(100))
    key = {"X-API-KEY": world.live_key}
    task_ids: list[str] = []
    async with api_client(database_url, clock) as api:
        for batch in range(3):
            phones = [
                {"msisdn": f"38097100{batch}00{n}", "reference": f"t{batch}n{n}"} for n in range(3)
            ]
            created = await api.post(
                "/rest/sms/create",
                json={"destination": "phones", "phones": phones, "originator": "S", "body": "b"},
                headers=key,
            )
            task_ids.append(created.json()["task_id"])
            single = await api.post(
                "/rest/sms/create", json=_sms(reference=f"s{batch}"), headers=key
            )
            assert single.json()["error"] == "0"
        async with sessions() as session:
            message_ids = set((await session.scalars(select(Message.id))).all())
            tasks = set((await session.scalars(select(Task.id))).all())
        assert not message_ids & tasks
        for task_id in task_ids:
            answer = (await api.get(f"/sms/{task_id}", headers=key)).json()
            assert answer["task_id"] == task_id and "msisdn" not in answer, answer
        for message_id in message_ids:
            answer = (await api.get(f"/sms/{message_id}", headers=key)).json()
            assert answer["id"] == str(message_id), answer
        # The seed's other path for a task still works.
        task = (await api.get(f"/rest/sms/task/{task_ids[0]}", headers=key)).json()
        assert task["total"] == "3", task


async def test_sms_by_id_answers_a_viber_message_as_one(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        created = await create(api, vw, viber_request("380972000001"))
        viber_id = created[0]["messages"][0]["id"]
        as_sms = (await api.get(f"/rest/sms/{viber_id}", headers=vw.key)).json()
        as_viber = (await api.get(f"/rest/viber/{viber_id}", headers=vw.key)).json()
    assert as_sms["message_type"] == "viber"
    assert as_sms["status"] == as_viber["status"] and as_sms["id"] == viber_id


async def test_hlr_callbacks_are_hlr_json_whatever_the_clients_webhook_format(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world, _ = await build_hlr_world(sessions, clock, callback_url="https://client.example/h")
    async with sessions() as session, session.begin():
        await session.execute(
            update(Client).where(Client.id == world.client_id).values(webhook_format="ip1")
        )
    await accept(sessions, clock, world, ["380505142320"])
    worker = HlrWorker(sessions, clock, CountryTable.load(), HlrOptions())
    await worker.refresh_providers()
    try:
        clock.advance(3)
        assert (await worker.step()).finished == 1
    finally:
        await worker.stop()
    async with sessions() as session:
        [delivery] = (await session.scalars(select(WebhookDelivery))).all()
    body = orjson.loads(delivery.body)
    assert delivery.content_type == "application/json"
    assert body["msisdn"] == "380505142320" and body["reference"] == "ref0"
    assert "status" in body and "network" in body
