"""Viber → SMS fallback on each database: every trigger, charging of both legs, reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_viber_api import (
    ViberWorld,
    balance_of,
    build_viber_world,
    create,
    settle,
    viber_request,
)
from tests.support import api_client, history_statuses, issue_dr_login, stored_events
from tidings.billing.models import LedgerEntry
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.messages.changes import StatusChange
from tidings.messages.models import Message
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.webhooks.models import WebhookDelivery

PHONE = "380972000001"
ALTERNATIVE = {"sms": {"text": "Hello over SMS", "originator": "MyShop", "validity": 300}}


async def run_worker(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, **settle_args: Any
) -> DeliveryWorker:
    worker = DeliveryWorker(sessions, clock, WorkerOptions(poll_interval=0.01))
    await worker.refresh_suppliers()
    try:
        await settle(worker, **settle_args)
    finally:
        await worker.stop()
    return worker


async def messages_by_channel(
    sessions: async_sessionmaker[AsyncSession],
) -> dict[str, list[Message]]:
    async with sessions() as session:
        rows = (await session.scalars(select(Message).order_by(Message.id))).all()
    found: dict[str, list[Message]] = {"viber": [], "sms": []}
    for row in rows:
        found[row.channel].append(row)
    return found


async def ledger(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[Decimal, str]]:
    async with sessions() as session:
        rows = (await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all()
    return [(row.amount, row.reason) for row in rows if row.reason != "top_up"]


async def send_one(database_url: str, vw: ViberWorld, clock: FrozenClock, **item: Any) -> int:
    async with api_client(database_url, clock) as api:
        created = await create(api, vw, viber_request(PHONE, **item))
    return int(created[0]["messages"][0]["id"])


async def test_not_a_viber_user_falls_back_to_sms_and_both_legs_are_charged(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"non_users": PHONE})
    viber_id = await send_one(
        database_url, vw, clock, options=ALTERNATIVE, callback_url="https://client.example/dlr"
    )
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    [viber], [sms] = found["viber"], found["sms"]
    assert viber.id == viber_id and viber.status == "not_viber_user"
    assert (sms.parent_id, sms.status, sms.msisdn) == (viber_id, "delivered", PHONE)
    assert (sms.originator, sms.body, sms.reference) == ("MyShop", "Hello over SMS", None)
    assert (sms.expires_at - sms.time_in).total_seconds() == 300
    assert sms.callback_url == "https://client.example/dlr"
    # Charged what was sent: the Viber message, and the SMS once it went.
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.97")
    assert await ledger(sessions) == [(Decimal("-0.01"), "charge"), (Decimal("-0.02"), "charge")]

    async with api_client(database_url, clock) as api:
        status = (await api.get(f"/rest/viber/{viber_id}", headers=vw.key)).json()
        assert status["status"] == "not-viber-user"
        assert status["alternativeSMS"] == {
            "id": str(sms.id),
            "msisdn": PHONE,
            "reference": None,
            "time_in": "2026-03-01 12:00:00",
            "time_sent": "2026-03-01 12:00:00",
            "time_dr": "2026-03-01 12:00:00",
            "status": "delivered",
            "price": "0.02",
            "currency": "EUR",
            "message_type": "sms",
            "viber_id": str(viber_id),
            "originator": "MyShop",
        }
        # The SMS is an SMS of its own too.
        as_sms = (await api.get(f"/rest/sms/{sms.id}", headers=vw.key)).json()
        assert as_sms["status"] == "delivered" and as_sms["viber_id"] == str(viber_id)

        login, password = await issue_dr_login(sessions, clock, vw.world.client_id)
        base = f"/{vw.world.client_id}/api/dr"
        advanced = (await api.get(f"{base}/{viber_id}/advanced", auth=(login, password))).json()
        by_extra = await api.get(f"{base}/external/v0/advanced", auth=(login, password))
        assert by_extra.json() == advanced
        simple = (await api.get(f"{base}/{viber_id}/simple", auth=(login, password))).json()
    time = 1772366400000  # 2026-03-01 12:00:00 UTC in milliseconds
    viber_report = {
        "phone_number": PHONE,
        "message_id": str(viber_id),
        "extra_id": "v0",
        "time": time,
        "last_partner": "viber",
        "status": 3,
        "substatus": 37,
        "hyber_status": 37033,
    }
    sms_report = {
        **viber_report,
        "last_partner": "sms",
        "status": 2,
        "substatus": 23,
        "hyber_status": 23011,
        "total_sms_parts": 1,
        "delivered_sms_parts": 1,
    }
    assert advanced == {
        "reports": [viber_report, sms_report],
        "started": True,
        "processing": False,
        "delivered_via": "sms",
        "channels": [{"channel": "viber", "ttl": 86400}, {"channel": "sms", "ttl": 300}],
    }
    assert simple == sms_report

    # Webhooks for both legs, each in order, the SMS naming its Viber message.
    async with sessions() as session:
        deliveries = (
            await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        ).all()
    bodies = [(d.message_id, orjson.loads(d.body)) for d in deliveries]
    assert [(m, b["status"]) for m, b in bodies] == [
        (viber_id, "sent"),
        (viber_id, "not-viber-user"),
        (sms.id, "sent"),
        (sms.id, "delivered"),
    ]
    assert all(d.url == "https://client.example/dlr" for d in deliveries)
    assert bodies[1][1]["message_type"] == "viber" and bodies[1][1]["reference"] == "v0"
    assert bodies[3][1]["viber_id"] == str(viber_id)


async def test_undelivered_over_viber_falls_back(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"undelivered": PHONE})
    await send_one(database_url, vw, clock, options=ALTERNATIVE)
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    assert [m.status for m in found["viber"]] == ["undelivered"]
    assert [m.status for m in found["sms"]] == ["delivered"]
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.97")


async def test_no_final_report_within_the_ttl_falls_back_when_it_passes(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"silent": PHONE})
    async with api_client(database_url, clock) as api:
        body = viber_request(PHONE, options=ALTERNATIVE)
        body["validity"] = 60
        viber_id = int((await create(api, vw, body))[0]["messages"][0]["id"])
    worker = DeliveryWorker(sessions, clock, WorkerOptions(poll_interval=0.01))
    await worker.refresh_suppliers()
    try:
        await settle(worker, until={"queued"})
        await worker.sweep()  # within the TTL: nothing happens
        found = await messages_by_channel(sessions)
        assert [m.status for m in found["viber"]] == ["sent"] and found["sms"] == []
        clock.advance(61)
        await worker.sweep()
        found = await messages_by_channel(sessions)
        assert [m.status for m in found["viber"]] == ["expired"]
        assert found["viber"][0].status_detail == "no final Viber report within its TTL"
        assert [(m.status, m.parent_id) for m in found["sms"]] == [("queued", viber_id)]
        async with api_client(database_url, clock) as api:
            login, password = await issue_dr_login(sessions, clock, vw.world.client_id)
            url = f"/{vw.world.client_id}/api/dr/{viber_id}/advanced"
            pending = (await api.get(url, auth=(login, password))).json()
        assert (pending["processing"], pending["delivered_via"]) == (True, None)
        assert [(r["last_partner"], r["status"]) for r in pending["reports"]] == [
            ("viber", 3),  # expired
            ("hyber", -1),  # the SMS is still with us
        ]
        assert pending["channels"] == [
            {"channel": "viber", "ttl": 60},
            {"channel": "sms", "ttl": 300},
        ]
        await settle(worker)
    finally:
        await worker.stop()
    found = await messages_by_channel(sessions)
    assert [m.status for m in found["sms"]] == ["delivered"]
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.97")


async def test_ttl_passing_before_sending_falls_back_too(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """A Viber message still waiting when its TTL ends expires unsent (refunded) and falls back."""
    vw = await build_viber_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        body = viber_request(PHONE, options=ALTERNATIVE)
        body["validity"] = 15
        await create(api, vw, body)
    clock.advance(16)
    worker = DeliveryWorker(sessions, clock, WorkerOptions(poll_interval=0.01))
    await worker.refresh_suppliers()
    try:
        await worker.sweep()
        await settle(worker)
    finally:
        await worker.stop()
    found = await messages_by_channel(sessions)
    assert [m.status for m in found["viber"]] == ["expired"]
    assert [m.status for m in found["sms"]] == ["delivered"]
    # The Viber message never left: refunded; only the SMS is paid for.
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.98")


async def test_delivered_over_viber_sends_no_sms(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"read_ratio": 0})
    viber_id = await send_one(database_url, vw, clock, options=ALTERNATIVE)
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    assert [m.status for m in found["viber"]] == ["delivered"] and found["sms"] == []
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.99")
    async with api_client(database_url, clock) as api:
        login, password = await issue_dr_login(sessions, clock, vw.world.client_id)
        advanced = (
            await api.get(
                f"/{vw.world.client_id}/api/dr/{viber_id}/advanced", auth=(login, password)
            )
        ).json()
        status = (await api.get(f"/rest/viber/{viber_id}", headers=vw.key)).json()
    assert "alternativeSMS" not in status
    assert advanced["delivered_via"] == "viber"
    assert [r["hyber_status"] for r in advanced["reports"]] == [23043]
    assert advanced["channels"] == [
        {"channel": "viber", "ttl": 86400},
        {"channel": "sms", "ttl": 300},
    ]


async def test_a_viber_message_without_an_alternative_just_ends(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"non_users": PHONE})
    await send_one(database_url, vw, clock)
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    assert [m.status for m in found["viber"]] == ["not_viber_user"] and found["sms"] == []
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.99")


async def test_a_fallback_sms_that_never_leaves_is_refunded(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(
        sessions, clock, viber_options={"non_users": PHONE}, sms_options={"reject_ratio": 1}
    )
    await send_one(database_url, vw, clock, options=ALTERNATIVE)
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    assert [m.status for m in found["sms"]] == ["rejected"]
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.99")
    assert await ledger(sessions) == [
        (Decimal("-0.01"), "charge"),
        (Decimal("-0.02"), "charge"),
        (Decimal("0.02"), "refund"),
    ]


async def test_a_balance_that_cannot_pay_the_sms_fails_the_fallback_without_charge(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(
        sessions, clock, viber_options={"non_users": PHONE}, balance=Decimal("0.015")
    )
    viber_id = await send_one(
        database_url, vw, clock, options=ALTERNATIVE, callback_url="https://client.example/dlr"
    )
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    [sms] = found["sms"]
    assert (sms.status, sms.price, sms.parent_id) == ("failed", Decimal(0), viber_id)
    async with sessions() as session:
        pushed = (
            await session.scalars(
                select(WebhookDelivery.body).where(WebhookDelivery.message_id == sms.id)
            )
        ).all()
    assert [orjson.loads(body)["status"] for body in pushed] == ["failed"]
    assert sms.status_detail == "fallback SMS not sent: the balance does not cover it"
    assert await balance_of(sessions, vw.world.client_id) == Decimal("0.005")
    async with sessions() as session:
        events = await history_statuses(session, [sms.id])
    assert events == ["failed"]
    async with api_client(database_url, clock) as api:
        status = (await api.get(f"/rest/viber/{viber_id}", headers=vw.key)).json()
    assert status["alternativeSMS"]["status"] == "failed"


async def test_a_viber_message_the_provider_refuses_falls_back(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"reject_ratio": 1})
    await send_one(database_url, vw, clock, options=ALTERNATIVE)
    await run_worker(sessions, clock)
    found = await messages_by_channel(sessions)
    assert [m.status for m in found["viber"]] == ["rejected"]
    assert [m.status for m in found["sms"]] == ["delivered"]
    # The refused Viber message is refunded; the SMS that went is paid for.
    assert await balance_of(sessions, vw.world.client_id) == Decimal("9.98")


async def test_a_read_report_on_a_sent_message_implies_delivered(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """`read` means delivered: a message still at `sent` (its delivery report lost or racing
    behind) goes through `delivered`, so the client hears both, in order."""
    vw = await build_viber_world(sessions, clock)
    viber_id = int(await send_one(database_url, vw, clock))
    async with transaction(sessions) as session:
        await apply_changes(
            session, clock, [StatusChange(viber_id, Status.SENT, clock.now(), sent=True)]
        )
    async with transaction(sessions) as session:
        applied = await apply_changes(
            session, clock, [StatusChange(viber_id, Status.READ, clock.now(), "seen")]
        )
        late = await apply_changes(
            session, clock, [StatusChange(viber_id, Status.DELIVERED, clock.now())]
        )
    assert [a.change.status for a in applied] == [Status.DELIVERED, Status.READ]
    assert late == []  # the delivery report that comes after changes nothing more
    async with sessions() as session:
        events = await history_statuses(session, [viber_id])
        rows = await stored_events(session)
        message = await session.get(Message, viber_id)
    assert list(events) == ["sent", "delivered", "read"]
    # Only the delivered that the read replaced on the message row is a stored history row.
    assert rows == ["delivered"]
    assert message is not None and message.status == "read"
