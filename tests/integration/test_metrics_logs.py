"""Status-change logs on each database: one JSON event per change, as a message flows."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import api_client, build_world, set_dlr_credentials
from tidings.clock import FrozenClock
from tidings.config import Settings
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.observability.logging import configure_logging


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The process logging at TIDINGS_LOG_LEVEL=info into a buffer; put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setenv("TIDINGS_LOG_LEVEL", "info")
    stream = io.StringIO()
    configure_logging(Settings().log_level, stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def events(stream: io.StringIO, name: str) -> list[dict[str, object]]:
    found = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    return [event for event in found if event["event"] == name]


async def test_one_event_per_state_change_with_message_client_and_supplier(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    logs: io.StringIO,
) -> None:
    world = await build_world(sessions, clock)
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    request = {
        "destination": "phones",
        "originator": "test",
        "body": "hi",
        "phones": [{"msisdn": "380972000000", "reference": "a"}],
    }
    async with api_client(database_url, clock) as api:
        created = await api.put(
            "/rest/sms/create", json=request, headers={"X-API-KEY": world.live_key}
        )
        assert created.json()["error"] == "0", created.text
        message_id = int(created.json()["result"][0]["id"])
        # The simulator answers submits; its reports go to the worker's own report queue.
        worker = DeliveryWorker(sessions, clock, WorkerOptions())
        await worker.refresh_suppliers()
        try:
            assert await worker.lanes[world.supplier_id].step()
            for _ in range(500):  # the simulator reports from a task of its own
                if len(events(logs, "message.status")) >= 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            await worker.stop()

    [accepted] = events(logs, "message.accepted")
    assert accepted["message_id"] == message_id
    assert accepted["client_id"] == world.client_id
    assert accepted["supplier_id"] == world.supplier_id
    assert accepted["level"] == "info" and accepted["logger"] == "tidings.messages"
    changes = events(logs, "message.status")
    assert [(e["from_status"], e["status"]) for e in changes] == [
        ("queued", "sent"),
        ("sent", "delivered"),
    ]
    for event in changes:
        assert event["message_id"] == message_id
        assert event["client_id"] == world.client_id
        assert event["supplier_id"] == world.supplier_id
    assert changes[1]["supplier_message_id"] is not None


async def test_nothing_below_warning_by_default(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIDINGS_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(Settings().log_level, stream)
    try:
        world = await build_world(sessions, clock)
        async with api_client(database_url, clock) as api:
            created = await api.post(
                "/rest/sms/create",
                json={
                    "destination": "phone",
                    "msisdn": "380972000000",
                    "originator": "test",
                    "reference": "quiet",
                    "body": "hi",
                },
                headers={"X-API-KEY": world.live_key},
            )
            assert created.status_code == 200, created.text
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    assert stream.getvalue() == ""
