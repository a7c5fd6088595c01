"""Metrics on each database: the values move as messages flow, read back from `/metrics`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_viber_api import build_viber_world, viber_request
from tests.support import (
    Receiver,
    World,
    accept_messages,
    api_client,
    build_world,
    send_all,
    set_dlr_credentials,
)
from tidings.accounts.models import Client
from tidings.accounts.service import create_client
from tidings.billing.service import import_prices
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.service import claim_batch
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.exports.filters import ExportFilter
from tidings.exports.service import create_export
from tidings.messages.changes import StatusChange
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.numbering import CountryTable
from tidings.observability.depths import QueueDepths
from tidings.observability.exposition import MetricsServer
from tidings.observability.metrics import CONTENT_TYPE, Metrics
from tidings.routing.service import create_route, create_supplier
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(api: httpx.AsyncClient) -> Samples:
    answer = await api.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    return parse(answer.text)


async def fresh(metrics: Metrics) -> Samples:
    await metrics.refresh()
    return parse(metrics.render().decode())


def depth(samples: Samples, queue: str) -> float:
    found = samples.get(("tidings_queue_depth", frozenset({("queue", queue)})))
    assert found is not None, f"no depth for {queue}"
    return found


SINGLE = {
    "originator": "test",
    "body": "test sms",
    "destination": "phone",
    "msisdn": "380972000000",
    "reference": "m1",
}


async def test_an_sms_through_the_api_moves_accepted_sent_delivered_and_histograms(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    labels = {
        "client_id": str(world.client_id),
        "supplier_id": str(world.supplier_id),
        "country": "UA",
        "channel": "sms",
    }
    supplier = str(world.supplier_id)
    async with api_client(
        database_url, clock, with_workers=True, worker_options=WorkerOptions(poll_interval=0.01)
    ) as api:
        before = await scrape(api)
        assert value(before, "tidings_messages_accepted_total", **labels) == 0
        created = await api.post(
            "/rest/sms/create", json=SINGLE, headers={"X-API-KEY": world.live_key}
        )
        assert created.status_code == 200, created.text
        message_id = created.json()["id"]
        for _ in range(500):
            status = await api.get(f"/rest/sms/{message_id}", headers={"X-API-KEY": world.live_key})
            after = await scrape(api)
            # Counted right after the commit that made it true: wait for both.
            if status.json()["status"] == "delivered" and value(
                after, "tidings_messages_final_total", **labels, status="delivered"
            ):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the message was not delivered")

    assert value(after, "tidings_messages_accepted_total", **labels) == 1
    assert value(after, "tidings_messages_sent_total", **labels) == 1
    assert value(after, "tidings_messages_final_total", **labels, status="delivered") == 1
    final = {"supplier_id": supplier, "channel": "sms", "status": "delivered"}
    # The clock stands still: accepted and delivered at the same instant.
    assert value(after, "tidings_message_accept_to_final_seconds_count", **final) == 1
    assert value(after, "tidings_message_accept_to_final_seconds_bucket", **final, le="1.0") == 1
    assert value(after, "tidings_supplier_submit_seconds_count", supplier_id=supplier) >= 1
    assert value(after, "tidings_supplier_state", supplier_id=supplier, tidings_supplier_state="up")
    # The simulator reports through the worker's report queue, counted like /api/dlr's.
    assert value(after, "tidings_dlr_received_total", supplier_id=supplier, status="delivered") == 1
    assert depth(after, "dispatch_due") == 0
    assert depth(after, "webhooks_pending") == 0


async def test_a_dlr_post_moves_the_intake_counter(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    await accept_messages(sessions, clock, world, 2)
    await send_all(sessions, clock, world, ["1561370632513", "1561370632522"])
    supplier = str(world.supplier_id)
    async with api_client(database_url, clock) as api:
        posted = await api.get(  # seed 001's own example
            "/api/dlr?message_id=1561370632513&message_state=delivered&request_id=1"
            "&message_id=1561370632522&message_state=undeliverable&request_id=2"
            "&_login=LOGIN&_password=PASSWORD"
        )
        assert posted.status_code == 200, posted.text
        # A report for an id we never gave out is stored (and counted) all the same.
        unknown = await api.post(
            "/api/dlr",
            data={
                "message_id": "999",
                "message_state": "delivered",
                "_login": "LOGIN",
                "_password": "PASSWORD",
            },
        )
        assert unknown.status_code == 200, unknown.text
        samples = await scrape(api)
    received = "tidings_dlr_received_total"
    assert value(samples, received, supplier_id=supplier, status="delivered") == 2
    assert value(samples, received, supplier_id=supplier, status="undelivered") == 1
    labels = {
        "client_id": str(world.client_id),
        "supplier_id": supplier,
        "country": "UA",
        "channel": "sms",
    }
    final = "tidings_messages_final_total"
    assert value(samples, final, **labels, status="delivered") == 1
    assert value(samples, final, **labels, status="undelivered") == 1


async def test_webhook_attempts_by_outcome_and_the_webhook_queue(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock, balance=Decimal(100))
    metrics = Metrics(QueueDepths(sessions, clock, max_age=0))
    async with Receiver(fail_first=2) as endpoint:
        async with transaction(sessions) as session:
            client = await session.get(Client, world.client_id)
            assert client is not None
            client.callback_url = endpoint.url
            client.retry_schedule = "ketchup"  # 60 s, 360 s, ...
        [mid] = await accept_messages(sessions, clock, world)
        async with transaction(sessions) as session:
            await apply_changes(
                session, clock, [StatusChange(mid, Status.SENT, clock.now(), sent=True)]
            )
        samples = await fresh(metrics)
        assert depth(samples, "webhooks_pending") == 1
        assert depth(samples, "webhooks_due") == 1

        worker = WebhookWorker(sessions, clock, WebhookOptions(), metrics=metrics)
        try:
            assert await worker.step() == 1  # answered 500: to be retried in 60 s
            samples = await fresh(metrics)
            attempts = {"client_id": str(world.client_id)}
            assert (
                value(samples, "tidings_webhook_attempts_total", **attempts, outcome="retry") == 1
            )
            assert depth(samples, "webhooks_pending") == 1
            assert depth(samples, "webhooks_due") == 0
            clock.advance(61)
            assert await worker.step() == 1  # 500 again
            clock.advance(361)
            assert await worker.step() == 1  # 200
        finally:
            await worker.stop(grace=1)
        samples = await fresh(metrics)
    name = "tidings_webhook_attempts_total"
    assert value(samples, name, **attempts, outcome="retry") == 2
    assert value(samples, name, **attempts, outcome="delivered") == 1
    assert depth(samples, "webhooks_pending") == 0
    assert [r.status for r in endpoint.requests] == [500, 500, 200]


async def test_queue_depths_of_dispatch_and_exports(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    depths = QueueDepths(sessions, clock, max_age=0)
    metrics = Metrics(depths)
    samples = await fresh(metrics)
    assert {q: depth(samples, q) for q in ("dispatch_due", "exports_pending", "hlr_pending")} == {
        "dispatch_due": 0,
        "exports_pending": 0,
        "hlr_pending": 0,
    }
    await accept_messages(sessions, clock, world, 3)
    samples = await fresh(metrics)
    assert depth(samples, "dispatch_due") == 3
    async with transaction(sessions) as session:
        claimed = await claim_batch(session, clock, world.supplier_id, 1, lease_seconds=60)
    assert len(claimed.to_send) == 1
    samples = await fresh(metrics)
    assert depth(samples, "dispatch_due") == 2
    assert depth(samples, "dispatch_in_flight") == 1
    async with transaction(sessions) as session:
        await create_export(
            session,
            clock,
            world.client_id,
            ExportFilter(time_in_from=datetime(2026, 2, 1, tzinfo=UTC)),
            None,
        )
    samples = await fresh(metrics)
    assert depth(samples, "exports_pending") == 1
    assert depth(samples, "exports_building") == 0

    # Bounded: a count stops at the cap.
    capped = Metrics(QueueDepths(sessions, clock, max_age=0, cap=2))
    assert depth(await fresh(capped), "dispatch_due") == 2
    # Cached: within max_age a scrape reuses the last count.
    cached = QueueDepths(sessions, clock, max_age=3600)
    await cached.refresh()
    async with transaction(sessions) as session:
        await claim_batch(session, clock, world.supplier_id, 1, lease_seconds=60)
    await cached.refresh()
    assert cached.depths["dispatch_due"] == 2
    await depths.refresh()
    assert depths.depths["dispatch_due"] == 1


async def http_world(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, url: str
) -> World:
    """A client routed to an `http` supplier (seed 004 upstream) at `url`."""
    async with transaction(sessions) as session:
        await import_prices(
            session, CountryTable.load(), "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"
        )
        created = await create_client(session, clock, name="acme", balance=Decimal(10))
        supplier = await create_supplier(
            session, clock, name="upstream", kind="http", options={"url": url, "api_key": "k"}
        )
        await create_route(session, clock, type_="sms", supplier=supplier.name)
    return World(created.client.id, created.live_key, created.test_key, supplier.id)


async def test_supplier_state_and_errors_from_real_lanes(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async def throttling(_request: object, _n: int) -> tuple[int, bytes]:
        return 429, b"{}"

    async with Receiver(respond=throttling) as upstream:
        world = await http_world(sessions, clock, f"http://127.0.0.1:{upstream.port}")
        supplier = str(world.supplier_id)
        metrics = Metrics()
        worker = DeliveryWorker(sessions, clock, WorkerOptions(), metrics=metrics)
        await worker.refresh_suppliers()
        try:
            await accept_messages(sessions, clock, world, 2)
            samples = await fresh(metrics)
            state = "tidings_supplier_state"
            assert value(samples, state, supplier_id=supplier, tidings_supplier_state="up") == 1
            assert await worker.lanes[world.supplier_id].step()
            samples = await fresh(metrics)
            assert value(samples, state, supplier_id=supplier, tidings_supplier_state="up") == 0
            assert (
                value(samples, state, supplier_id=supplier, tidings_supplier_state="throttled") == 1
            )
            errors = "tidings_supplier_errors_total"
            assert value(samples, errors, supplier_id=supplier, kind="temporary") == 2

            # The upstream goes away: the submit call itself fails (connection refused).
            await upstream.stop()
            clock.advance(60)  # past the back-off
            assert await worker.lanes[world.supplier_id].step()
        finally:
            await worker.stop()
    samples = await fresh(metrics)
    assert value(samples, state, supplier_id=supplier, tidings_supplier_state="down") == 1
    assert value(samples, errors, supplier_id=supplier, kind="submit") == 1
    assert value(samples, "tidings_supplier_submit_seconds_count", supplier_id=supplier) == 2


async def test_metrics_off(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock, settings={"metrics": False}) as api:
        assert (await api.get("/metrics")).status_code == 404
        created = await api.post(
            "/rest/sms/create", json=SINGLE, headers={"X-API-KEY": world.live_key}
        )
        assert created.status_code == 200


async def test_the_worker_process_serves_its_own_metrics(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    await accept_messages(sessions, clock, world, 2)
    metrics = Metrics(QueueDepths(sessions, clock))
    server = MetricsServer(metrics, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", trust_env=False
        ) as http:
            answer = await http.get("/metrics")
            assert answer.status_code == 200
            assert answer.headers["content-type"] == CONTENT_TYPE
            assert depth(parse(answer.text), "dispatch_due") == 2
            assert (await http.get("/")).status_code == 404
            assert (await http.post("/metrics")).status_code == 405
    finally:
        await server.stop()


async def test_a_viber_create_is_counted_as_accepted_on_the_viber_channel(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock)
    labels = {
        "client_id": str(vw.world.client_id),
        "supplier_id": str(vw.viber_supplier_id),
        "country": "UA",
        "channel": "viber",
    }
    async with api_client(database_url, clock) as api:
        created = await api.post(
            "/rest/viber/create",
            json=viber_request("380972000000", "380972000001"),
            headers=vw.key,
        )
        assert created.status_code == 200, created.text
        after = await scrape(api)
    assert value(after, "tidings_messages_accepted_total", **labels) == 2
