"""The whole SMS path on each database: accept, charge, dispatch, report, show."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import api_client, build_world, history_statuses, stored_events
from tidings.accounts.models import Client
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.models import DispatchJob, Receipt
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.messages.models import Message

SINGLE = {
    "originator": "test",
    "body": "test sms",
    "validity": 72,
    "tariff": 0,
    "destination": "phone",
    "msisdn": "380972000000",
    "reference": "12erdgm9",
}


async def drain(worker: DeliveryWorker) -> None:
    """Step every lane until every message has a final status (reports land in between)."""
    for _ in range(500):
        for lane in worker.lanes.values():
            await lane.step()
        await asyncio.sleep(0.01)  # the simulator's report tasks run meanwhile
        # A report that commits in the same instant as its submit answer is matched by the
        # sweeper's late-receipt pass, as in the running worker (likelier on a loaded machine).
        await worker.sweep()
        async with worker.sessions() as session:
            open_ = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.status.in_(["queued", "scheduled", "sent"]))
            )
        if open_ == 0:
            return
    raise AssertionError("messages did not reach a final status")


async def test_single_sms_is_charged_sent_and_delivered(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        created = await api.post(
            "/rest/sms/create", json=SINGLE, headers={"X-API-KEY": world.live_key}
        )
        assert created.status_code == 200
        body = created.json()
        assert body == {
            "error": "0",
            "id": body["id"],
            "reference": "12erdgm9",
            "price": "0.02",
            "currency": "EUR",
        }
        async with transaction(sessions) as session:
            client = await session.get(Client, world.client_id)
            assert client is not None and client.balance == Decimal("9.98")
            assert await session.scalar(select(func.count()).select_from(DispatchJob)) == 1

        worker = DeliveryWorker(sessions, clock, WorkerOptions(poll_interval=0.01))
        await worker.refresh_suppliers()
        try:
            await drain(worker)
        finally:
            await worker.stop()

        status = await api.get(f"/rest/sms/{body['id']}", headers={"X-API-KEY": world.live_key})
        assert status.json()["status"] == "delivered"
        assert status.json()["time_in"] == "2026-03-01 12:00:00"
        assert status.json()["time_dr"] == "2026-03-01 12:00:00"
        by_ref = await api.get(
            "/rest/sms/reference/12erdgm9", headers={"X-API-KEY": world.live_key}
        )
        assert by_ref.json() == status.json()
        short = await api.get("/sms/12erdgm9", headers={"X-API-KEY": world.live_key})
        assert short.json() == status.json()
    async with transaction(sessions) as session:
        events = await history_statuses(session)
        assert events == ["sent", "delivered"]
        # The message row holds both: no history row repeats it (issue 18).
        assert await stored_events(session) == []
        assert await session.scalar(select(func.count()).select_from(DispatchJob)) == 0
        assert await session.scalar(select(func.count()).select_from(Receipt)) == 1


async def test_bulk_task_counts_and_total(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(
        sessions,
        clock,
        supplier_options={"delivery_ratio": 0.5, "seed": 7, "outcomes": "undelivered"},
    )
    phones = [{"msisdn": f"38097200{i:04d}", "reference": f"r{i}"} for i in range(40)]
    request = {"destination": "phones", "phones": phones, "originator": "test", "body": "test sms"}
    async with api_client(database_url, clock) as api:
        created = (
            await api.put("/rest/sms/create", json=request, headers={"X-API-KEY": world.live_key})
        ).json()
        assert created["error"] == "0"
        assert created["totalprice"] == "0.80"
        assert [item["reference"] for item in created["result"]] == [p["reference"] for p in phones]
        worker = DeliveryWorker(sessions, clock, WorkerOptions(batch_size=15))
        await worker.refresh_suppliers()
        try:
            await drain(worker)
        finally:
            await worker.stop()
        task = (
            await api.get(
                f"/rest/sms/task/{created['task_id']}", headers={"X-API-KEY": world.live_key}
            )
        ).json()
    assert task["sent"] == "40"
    assert int(task["delivered"]) + int(task["undeliverable"]) == 40
    assert 5 < int(task["delivered"]) < 35
    assert task["totalprice"] == "0.80"
    assert task["originator"] == "test" and task["body"] == "test sms"
    async with transaction(sessions) as session:
        statuses = set((await session.scalars(select(Message.status))).all())
        assert statuses == {"delivered", "undelivered"}
