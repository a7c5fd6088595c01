"""The `tidings` command end to end over loopback, on each database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.e2e.gateway import Gateway
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.messages.models import Message, MessageEvent

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\nsms,9,UA,0.025,EUR\n"


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(database_url, tmp_path, lease_seconds="2", sweep_interval="0.5")
    yield node
    node.stop()


def setup_world(node: Gateway, tmp_path: Path, **simulator: str) -> dict[str, str]:
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    assert node.cli("prices", "import", str(prices)) == {"imported": 2}
    client = node.cli("clients", "create", "--name", "acme", "--balance", "500", "--tariff", "0")
    assert set(client) == {"id", "live_key", "test_key"}
    options = [arg for key, value in simulator.items() for arg in ("--option", f"{key}={value}")]
    supplier = node.cli("suppliers", "create", "--name", "sim", "--kind", "simulator", *options)
    assert set(supplier) == {"id"}
    node.cli("routes", "create", "--type", "sms", "--supplier", "sim", "--country", "UA")
    return client


def wait_until(predicate: object, timeout: float = 30) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_sms_round_trip(gateway: Gateway, tmp_path: Path) -> None:
    client = setup_world(gateway, tmp_path)
    gateway.start()
    headers = {"X-API-KEY": client["live_key"]}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=10) as http:
        created = http.post(
            "/rest/sms/create",
            json={
                "destination": "phone",
                "msisdn": "380972000000",
                "reference": "e2e1",
                "originator": "test",
                "body": "test sms",
            },
        ).json()
        assert created["error"] == "0" and created["price"] == "0.02"

        def delivered() -> bool:
            return http.get(f"/rest/sms/{created['id']}").json()["status"] == "delivered"

        wait_until(delivered)
        assert http.get("/rest/sms/prices").json()["prices"][0]["country"] == "UA"
    balance = gateway.cli("clients", "show", str(client["id"]))["balance"]
    assert balance == "499.980000"


async def test_kill_9_mid_batch_loses_nothing(
    gateway: Gateway, tmp_path: Path, database_url: str
) -> None:
    client = setup_world(gateway, tmp_path, latency_ms="40")
    gateway.env["TIDINGS_DISPATCH_BATCH_SIZE"] = "50"  # ~1,250 messages/s: slow enough to cut
    gateway.start()
    headers = {"X-API-KEY": client["live_key"]}
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=30) as http:
        for batch in range(3):
            phones = [
                {"msisdn": f"3809710{batch}{i:04d}", "reference": f"k{batch}x{i}"}
                for i in range(1000)
            ]
            response = await http.post(
                "/rest/sms/create",
                json={"destination": "phones", "phones": phones, "originator": "t", "body": "b"},
            )
            answer = response.json()
            assert answer["error"] == "0"
            accepted.extend(item["id"] for item in answer["result"])
    await asyncio.sleep(0.6)
    gateway.kill()

    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            total = await session.scalar(select(func.count()).select_from(Message))
            queued = await session.scalar(
                select(func.count()).select_from(Message).where(Message.status == "queued")
            )
        assert total == 3000
        assert 0 < (queued or 0) < 3000, "the kill should land mid-run"

        gateway.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with sessions() as session:
                delivered = await session.scalar(
                    select(func.count()).select_from(Message).where(Message.status == "delivered")
                )
            async with sessions() as session:
                queued_now = await session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.status.in_(["queued", "scheduled"]))
                )
            if delivered == 3000 or (queued_now == 0 and delivered):
                await asyncio.sleep(1)  # let the last reports land
                break
            await asyncio.sleep(0.3)
        async with sessions() as session:
            rows = await session.execute(
                select(Message.status, func.count()).group_by(Message.status)
            )
            statuses = {status: count for status, count in rows}
            # Nothing is lost or left queued. The simulator keeps reports it has not emitted
            # yet in memory, as a carrier that crashes would: messages it had taken when it
            # was killed stay "sent" (until their validity ends), like a lost DLR upstream.
            assert set(statuses) <= {"delivered", "sent"}
            assert statuses.get("sent", 0) < 500
            # Every message recorded as sent exactly once, whatever the kill interrupted: the
            # hand-over is the message row's `time_sent` (set once), and no history row
            # repeats it (issue 18).
            sent_rows = await session.scalar(
                select(func.count()).select_from(MessageEvent).where(MessageEvent.status == "sent")
            )
            assert sent_rows == 0
            unsent = await session.scalar(
                select(func.count()).where(Message.status != "queued", Message.time_sent.is_(None))
            )
            assert unsent == 0
            ids = {str(i) for i in (await session.scalars(select(Message.id))).all()}
        assert ids == set(accepted)
    finally:
        await engine.dispose()
