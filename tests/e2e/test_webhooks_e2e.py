"""Webhooks end to end: `tidings serve` as a subprocess, a receiver on loopback, kill -9."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.e2e.gateway import Gateway, free_port
from tests.support import Received, Receiver
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.messages.models import Message
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.signing import verify

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"
# Retries a second apart, for a minute: the restart below happens well within it.
FAST_RETRIES = ",".join(["1"] * 50)


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(
        database_url,
        tmp_path,
        lease_seconds="2",
        sweep_interval="0.5",
        webhook_lease_seconds="5",
        webhook_timeout="2",
    )
    yield node
    node.stop()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The gateway's database, read directly to see what it stored."""
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


def setup_client(
    node: Gateway, tmp_path: Path, callback_url: str, *schedule: str
) -> tuple[int, str]:
    """A client whose reports go to `callback_url`; its id and live key."""
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    node.cli("prices", "import", str(prices))
    client = node.cli("clients", "create", "--name", "acme", "--balance", "10")
    node.cli("clients", "update", str(client["id"]), "--callback-url", callback_url, *schedule)
    node.cli("suppliers", "create", "--name", "sim", "--kind", "simulator")
    node.cli("routes", "create", "--type", "sms", "--supplier", "sim")
    return int(client["id"]), str(client["live_key"])


async def send_sms(node: Gateway, live_key: str) -> str:
    async with httpx.AsyncClient(base_url=node.base_url, timeout=10) as http:
        answer = await http.post(
            "/rest/sms/create",
            headers={"X-API-KEY": live_key},
            json={
                "destination": "phone",
                "msisdn": "380972000000",
                "reference": "hook1",
                "originator": "test",
                "body": "webhooks",
            },
        )
    created = answer.json()
    assert created["error"] == "0", created
    return str(created["id"])


async def eventually(predicate: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    for _ in range(int(within / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def statuses(requests: list[Received]) -> list[str]:
    return [orjson.loads(r.body)["status"] for r in requests]


def check_signatures(requests: list[Received], secret: str) -> None:
    for request in requests:
        verify(secret, request.headers, request.body, now=datetime.now(UTC))


async def test_sent_then_delivered_arrive_signed(gateway: Gateway, tmp_path: Path) -> None:
    async with Receiver() as receiver:
        client_id, key = await asyncio.to_thread(setup_client, gateway, tmp_path, receiver.url)
        secret = (
            await asyncio.to_thread(gateway.cli, "clients", "webhook-secret", str(client_id))
        )["secret"]
        await asyncio.to_thread(gateway.start)
        message_id = await send_sms(gateway, key)

        async def both() -> bool:
            return len(receiver.answered()) >= 2

        await eventually(both)
        await asyncio.sleep(0.5)  # nothing more should come
        log = await asyncio.to_thread(gateway.cli, "clients", "webhooks", str(client_id))
    assert statuses(receiver.requests) == ["sent", "delivered"]
    assert {orjson.loads(r.body)["id"] for r in receiver.requests} == {message_id}
    check_signatures(receiver.requests, secret)
    assert len({r.webhook_id for r in receiver.requests}) == 2
    assert [(d["state"], len(d["attempts"])) for d in log] == [("delivered", 1)] * 2
    assert [d["attempts"][0]["status_code"] for d in log] == [200, 200]


async def test_kill_9_before_the_webhook_went_out_loses_nothing(
    gateway: Gateway, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The DLR is stored, the endpoint is down, the gateway dies; both come back."""
    receiver = Receiver(port=free_port())  # not listening yet: connections are refused
    client_id, key = await asyncio.to_thread(
        setup_client, gateway, tmp_path, receiver.url, "--retry-schedule", FAST_RETRIES
    )
    secret = (await asyncio.to_thread(gateway.cli, "clients", "webhook-secret", str(client_id)))[
        "secret"
    ]
    await asyncio.to_thread(gateway.start)
    message_id = await send_sms(gateway, key)

    async def dlr_stored_and_refused() -> bool:
        async with sessions() as session:
            status = await session.scalar(
                select(Message.status).where(Message.id == int(message_id))
            )
            tried = await session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.attempts > 0)
            )
        return status == "delivered" and bool(tried)

    await eventually(dlr_stored_and_refused)
    gateway.kill()
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.state == "pending")
        )
    assert pending == 2, "both reports are still owed"

    async with receiver:
        await asyncio.to_thread(gateway.start)

        async def both() -> bool:
            return len(receiver.successes_by_id()) >= 2

        await eventually(both)
        await asyncio.sleep(1.5)  # time for any duplicate to show up
    assert statuses(receiver.requests) == ["sent", "delivered"]
    # Nothing was in flight when it died (the endpoint refused): each report went out once.
    assert sorted(receiver.successes_by_id().values()) == [1, 1]
    assert len(receiver.requests) == 2
    check_signatures(receiver.requests, secret)
    async with sessions() as session:
        states = (await session.scalars(select(WebhookDelivery.state))).all()
    assert states == ["delivered", "delivered"]


async def test_kill_9_mid_request_resends_the_same_webhook_id(
    gateway: Gateway, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Killed while a request was in flight: sent again after the lease, with the same id,
    so a receiver that dedupes by webhook-id counts it once."""
    arrived = asyncio.Event()
    never = asyncio.Event()

    async def hang_first(_request: Received, n: int) -> tuple[int, bytes]:
        if n == 1:
            arrived.set()
            await never.wait()  # the gateway dies before any answer
        return 200, b"ok"

    async with Receiver(respond=hang_first) as receiver:
        _, key = await asyncio.to_thread(
            setup_client, gateway, tmp_path, receiver.url, "--retry-schedule", FAST_RETRIES
        )
        await asyncio.to_thread(gateway.start)
        await send_sms(gateway, key)
        await asyncio.wait_for(arrived.wait(), 30)
        gateway.kill()
        await asyncio.to_thread(gateway.start)

        async def both() -> bool:
            return len(receiver.successes_by_id()) >= 2

        await eventually(both)
        await asyncio.sleep(1.5)
    first_id = receiver.requests[0].webhook_id
    assert [r.webhook_id for r in receiver.requests].count(first_id) == 2  # the repeat
    assert sorted(receiver.successes_by_id().values()) == [1, 1]  # deduped: once each
    assert statuses(receiver.requests) == ["sent", "sent", "delivered"]
    async with sessions() as session:
        states = (await session.scalars(select(WebhookDelivery.state))).all()
    assert states == ["delivered", "delivered"]
