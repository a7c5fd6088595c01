"""Delivery-report webhooks on each database: enqueue, order, retries, give-up, isolation.

Time is a FrozenClock: the worker is stepped by hand and the clock advanced, so a 24-hour
retry schedule runs in milliseconds. The receivers are real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.support import Received, Receiver, World, accept_messages, build_world
from tidings.accounts.models import Client
from tidings.clock import FrozenClock
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.messages.changes import StatusChange
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery
from tidings.webhooks.repository import WebhookRepository
from tidings.webhooks.service import Response, ensure_secret, outcome_of, recent_deliveries
from tidings.webhooks.signing import verify
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

KETCHUP_DELAYS = [60, 360, 3600, 43200, 86400]


# --- Helpers ------------------------------------------------------------------------------


async def hook_world(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    url: str | None,
    *,
    name: str = "acme",
    webhook_format: str = "ketchup",
    schedule: str = "ketchup",
    login: str | None = None,
    password: str | None = None,
) -> World:
    world = await build_world(sessions, clock, name=name, balance=Decimal(100))
    async with transaction(sessions) as session:
        client = await session.get(Client, world.client_id)
        assert client is not None
        client.callback_url = url
        client.webhook_format = webhook_format
        client.retry_schedule = schedule
        client.webhook_login = login
        client.webhook_password = password
    return world


async def secret_of(sessions: async_sessionmaker[AsyncSession], client_id: int) -> str:
    async with sessions() as session:
        client = await session.get(Client, client_id)
    assert client is not None and client.webhook_secret
    return client.webhook_secret


async def move(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    message_ids: Sequence[int],
    *statuses: Status,
) -> None:
    """Move each message through `statuses` in one transaction, a second apart."""
    changes = [
        StatusChange(mid, status, clock.now() + timedelta(seconds=i), sent=status is Status.SENT)
        for mid in message_ids
        for i, status in enumerate(statuses)
    ]
    async with transaction(sessions) as session:
        await apply_changes(session, clock, changes)


async def deliveries(sessions: async_sessionmaker[AsyncSession]) -> list[WebhookDelivery]:
    async with sessions() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


async def attempts(
    sessions: async_sessionmaker[AsyncSession], delivery_id: int | None = None
) -> list[WebhookAttempt]:
    """The delivery log as the CLI and the console show it: a first attempt that succeeded
    has no row of its own, `with_attempts` rebuilds it from its delivery."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if delivery_id is not None:
        query = query.where(WebhookDelivery.id == delivery_id)
    async with sessions() as session:
        logs = await WebhookRepository(session).with_attempts(list(await session.scalars(query)))
    return sorted((a for _, log in logs for a in log), key=lambda a: (a.at, a.delivery_id))


async def attempt_rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookAttempt)) or 0)


@pytest.fixture
async def workers(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> AsyncIterator[Callable[..., WebhookWorker]]:
    """Builds workers on the test's database and clock; stops them all at the end."""
    made: list[WebhookWorker] = []

    def make(**options: Any) -> WebhookWorker:
        on = options.pop("sessions", sessions)
        worker = WebhookWorker(on, clock, WebhookOptions(**options))
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.stop(grace=1)


def json_status(body: str) -> str:
    status: str = orjson.loads(body)["status"]
    return status


def status_of(request: Received) -> str:
    status: str = orjson.loads(request.body)["status"]
    return status


# --- Enqueue ------------------------------------------------------------------------------


async def test_report_is_written_in_the_status_change_transaction(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await hook_world(sessions, clock, "http://127.0.0.1:9/hook")
    [mid] = await accept_messages(sessions, clock, world)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with transaction(sessions) as session:
            applied = await apply_changes(
                session, clock, [StatusChange(mid, Status.SENT, clock.now(), sent=True)]
            )
            assert len(applied) == 1
            assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
            raise Abort  # the status change rolls back, and its report with it
    assert await deliveries(sessions) == []

    change_at = clock.now() - timedelta(seconds=5)
    async with transaction(sessions) as session:
        await apply_changes(session, clock, [StatusChange(mid, Status.SENT, change_at, sent=True)])
    [stored] = await deliveries(sessions)
    assert (stored.client_id, stored.message_id, stored.event) == (
        world.client_id,
        mid,
        "message.status",
    )
    assert (stored.url, stored.format, stored.content_type, stored.state) == (
        "http://127.0.0.1:9/hook",
        "ketchup",
        "application/json",
        "pending",
    )
    assert stored.schedule == KETCHUP_DELAYS and stored.attempts == 0
    assert stored.next_attempt_at == change_at and stored.created_at == clock.now()
    body = orjson.loads(stored.body)
    assert body["id"] == str(mid) and body["status"] == "sent" and body["time_dr"] is None


async def test_message_url_overrides_client_url_and_no_url_means_no_report(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await hook_world(sessions, clock, None)
    first, second = await accept_messages(sessions, clock, world, 2)
    async with transaction(sessions) as session:
        from tidings.messages.models import Message

        message = await session.get(Message, second)
        assert message is not None
        message.callback_url = "http://127.0.0.1:9/own?id=2"
    await move(sessions, clock, [first, second], Status.SENT)
    assert [(d.message_id, d.url) for d in await deliveries(sessions)] == [
        (second, "http://127.0.0.1:9/own?id=2")
    ]


async def test_each_change_is_rendered_as_it_was(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """Two changes of one message in one batch: the first report still says "sent"."""
    world = await hook_world(sessions, clock, "http://127.0.0.1:9/hook", webhook_format="ip1")
    [mid] = await accept_messages(sessions, clock, world)
    await move(sessions, clock, [mid], Status.SENT, Status.DELIVERED)
    sent, delivered = [orjson.loads(d.body) for d in await deliveries(sessions)]
    assert (sent["code"], sent["duration"]) == (111, 0)
    assert (delivered["code"], delivered["duration"]) == (201, 1)
    assert sent["created"] < delivered["created"]

    await hook_world(sessions, clock, "http://127.0.0.1:9/k", name="kk")
    async with sessions() as session:
        client_id = await session.scalar(select(Client.id).where(Client.name == "kk"))
    assert client_id is not None
    kk = World(client_id, "", "", 0)
    [other] = await accept_messages(sessions, clock, kk, first_phone=380972000000)
    await move(sessions, clock, [other], Status.SENT, Status.DELIVERED)
    ketchup_sent, ketchup_delivered = [
        orjson.loads(d.body) for d in await deliveries(sessions) if d.message_id == other
    ]
    assert (ketchup_sent["status"], ketchup_sent["time_dr"]) == ("sent", None)
    assert ketchup_delivered["status"] == "delivered" and ketchup_delivered["time_dr"]


async def test_enqueue_costs_one_query_and_one_insert_per_batch(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    hooked = await hook_world(sessions, clock, "http://127.0.0.1:9/hook")
    silent = await hook_world(sessions, clock, None, name="silent")
    loud = await accept_messages(sessions, clock, hooked, 40)
    quiet = await accept_messages(sessions, clock, silent, 40, first_phone=380972000000)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await move(sessions, clock, quiet, Status.SENT)
        quiet_statements = list(statements)
        statements.clear()
        await move(sessions, clock, loud + quiet, Status.SENT, Status.DELIVERED)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    # Nothing written for a batch whose clients have no URL; one SELECT of the clients.
    assert not [s for s in quiet_statements if "webhook_deliveries" in s]
    assert len([s for s in quiet_statements if "FROM clients" in s]) == 1
    # 160 changes, 80 with a URL: one SELECT of the clients, one (bulk) INSERT.
    assert len([s for s in statements if "FROM clients" in s]) == 1
    assert len([s for s in statements if "INSERT INTO webhook_deliveries" in s]) == 1
    assert len(await deliveries(sessions)) == 80


# --- Sending ------------------------------------------------------------------------------


async def test_delivers_signed_and_records_the_attempt(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    async with Receiver() as receiver:
        world = await hook_world(sessions, clock, receiver.url)
        [mid] = await accept_messages(sessions, clock, world)
        await move(sessions, clock, [mid], Status.SENT)
        worker = workers()
        assert await worker.step() == 1
        assert await worker.step() == 0
    [request] = receiver.requests
    [stored] = await deliveries(sessions)
    assert request.method == "POST" and request.target == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.body.decode() == stored.body
    secret = await secret_of(sessions, world.client_id)
    assert verify(secret, request.headers, request.body, now=clock.now()) == stored.webhook_id
    assert (stored.state, stored.attempts, stored.finished_at) == ("delivered", 1, clock.now())
    assert stored.locked_until is None and stored.last_error is None
    [attempt] = await attempts(sessions)
    assert (attempt.status_code, attempt.response_body, attempt.error) == (200, "ok", None)
    assert attempt.duration_ms >= 0
    # A first-try success is logged on its delivery row: no attempt row written (issue 18).
    assert await attempt_rows(sessions) == 0


async def test_statuses_of_a_message_arrive_in_order(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    """A failing first report holds back the second of its message, not other messages."""
    held_back: int | None = None

    async def respond(request: Received, _n: int) -> tuple[int, bytes]:
        first = orjson.loads(request.body)["id"] == str(held_back)
        return (503, b"busy") if first and status_of(request) == "sent" else (200, b"ok")

    async with Receiver(respond=respond) as receiver:
        world = await hook_world(sessions, clock, receiver.url)
        stuck, free = await accept_messages(sessions, clock, world, 2)
        held_back = stuck
        await move(sessions, clock, [stuck, free], Status.SENT, Status.DELIVERED)
        worker = workers()
        # One report per message is claimable at a time; `free` goes on, `stuck` waits.
        assert await worker.step() == 2
        assert await worker.step() == 1
        assert await worker.step() == 0
        seen = [(orjson.loads(r.body)["id"], status_of(r), r.status) for r in receiver.requests]
        assert seen == [
            (str(stuck), "sent", 503),
            (str(free), "sent", 200),
            (str(free), "delivered", 200),
        ]
        held_back = None  # the endpoint recovers; the retry is due after a minute
        clock.advance(60)
        assert await worker.step() == 1
        assert await worker.step() == 1
    assert [(orjson.loads(r.body)["id"], status_of(r)) for r in receiver.requests[3:]] == [
        (str(stuck), "sent"),
        (str(stuck), "delivered"),
    ]
    assert {d.state for d in await deliveries(sessions)} == {"delivered"}


async def test_retries_follow_the_ketchup_schedule_then_give_up(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    async def refuse(_request: Received, _n: int) -> tuple[int, bytes]:
        return 500, b"x" * 2000

    async with Receiver(respond=refuse) as receiver:
        world = await hook_world(sessions, clock, receiver.url)
        [mid] = await accept_messages(sessions, clock, world)
        await move(sessions, clock, [mid], Status.SENT)
        worker = workers()
        start = clock.now()
        assert await worker.step() == 1
        for delay in KETCHUP_DELAYS:
            clock.advance(delay - 1)
            assert await worker.step() == 0, "not due yet"
            clock.advance(1)
            assert await worker.step() == 1
        clock.advance(10 * 86400)
        assert await worker.step() == 0, "given up: never tried again"
    assert len(receiver.requests) == 6
    [stored] = await deliveries(sessions)
    assert (stored.state, stored.attempts) == ("failed", 6)
    assert stored.finished_at == start + timedelta(seconds=sum(KETCHUP_DELAYS))
    assert stored.last_error is not None and stored.last_error.startswith("HTTP 500")
    log = await attempts(sessions)
    assert [a.status_code for a in log] == [500] * 6
    assert all(a.response_body == "x" * 500 for a in log)  # the first 500 characters
    assert [a.at - start for a in log] == [
        timedelta(seconds=sum(KETCHUP_DELAYS[:i])) for i in range(6)
    ]
    async with sessions() as session:
        [listed] = await recent_deliveries(session, world.client_id)
    assert listed["state"] == "failed" and len(listed["attempts"]) == 6


async def test_an_endpoint_failing_the_first_attempts_gets_the_report(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    async with Receiver(fail_first=2) as receiver:
        world = await hook_world(sessions, clock, receiver.url, schedule="ip1")
        [mid] = await accept_messages(sessions, clock, world)
        await move(sessions, clock, [mid], Status.SENT)
        worker = workers()
        for _ in range(3):
            assert await worker.step() == 1
            clock.advance(600)
    assert [r.status for r in receiver.requests] == [500, 500, 200]
    assert len({r.webhook_id for r in receiver.requests}) == 1  # one id across retries
    [stored] = await deliveries(sessions)
    assert (stored.state, stored.attempts) == ("delivered", 3)
    assert [a.status_code for a in await attempts(sessions)] == [500, 500, 200]


async def test_unreachable_endpoint_is_a_failed_attempt(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    closed = Receiver()
    await closed.start()
    await closed.stop()  # a port nobody listens on
    world = await hook_world(sessions, clock, closed.url, schedule="5")
    [mid] = await accept_messages(sessions, clock, world)
    await move(sessions, clock, [mid], Status.SENT)
    worker = workers()
    assert await worker.step() == 1
    clock.advance(5)
    assert await worker.step() == 1
    [stored] = await deliveries(sessions)
    assert (stored.state, stored.attempts) == ("failed", 2)
    log = await attempts(sessions)
    assert [a.status_code for a in log] == [None, None]
    assert all(a.error and "Connect" in a.error for a in log)


async def test_smartswitch_request_and_jsonapi_errors(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    async def jsonapi(_request: Received, n: int) -> tuple[int, bytes]:
        if n == 1:
            return 200, orjson.dumps({"errors": [{"code": "authentication", "title": "t"}]})
        return 200, orjson.dumps({"data": {"id": "1", "type": "dlr", "meta": {}}})

    async with Receiver(respond=jsonapi) as receiver:
        world = await hook_world(
            sessions,
            clock,
            receiver.url,
            webhook_format="smartswitch",
            schedule="1",
            login="LOGIN",
            password="PASSWORD",
        )
        [mid] = await accept_messages(sessions, clock, world)
        await move(sessions, clock, [mid], Status.SENT)
        worker = workers()
        assert await worker.step() == 1
        clock.advance(1)
        assert await worker.step() == 1
    [stored] = await deliveries(sessions)
    assert (stored.state, stored.attempts) == ("delivered", 2)
    first = receiver.requests[0]
    assert first.method == "POST" and first.body == b""
    assert first.target.startswith("/hook?")
    assert first.query == {
        "message_id": [str(mid)],
        "message_state": ["enroute"],
        "request_id": [str(stored.id)],
        "_login": ["LOGIN"],
        "_password": ["PASSWORD"],
    }
    assert [a.status_code for a in await attempts(sessions)] == [200, 200]
    assert "errors" in (await attempts(sessions))[0].response_body  # type: ignore[operator]


async def test_a_slow_endpoint_does_not_delay_another_clients_reports(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    release = asyncio.Event()

    async def hang(_request: Received, _n: int) -> tuple[int, bytes]:
        await release.wait()  # past the worker's timeout
        return 200, b"late"

    async with Receiver(respond=hang) as slow, Receiver() as fast:
        slow_world = await hook_world(sessions, clock, slow.url, name="slow")
        fast_world = await hook_world(sessions, clock, fast.url, name="fast")
        # The slow client's reports are older, so they come first in the queue.
        slow_ids = await accept_messages(sessions, clock, slow_world, 30)
        await move(sessions, clock, slow_ids, Status.SENT)
        clock.advance(1)
        fast_ids = await accept_messages(sessions, clock, fast_world, 30, first_phone=380972000000)
        await move(sessions, clock, fast_ids, Status.SENT)
        worker = workers(concurrency=8, per_host=2, batch_size=10, timeout=1.5, lease_seconds=10)
        started = time.monotonic()
        await worker.start()
        for _ in range(120):
            if len(fast.answered()) == 30 or time.monotonic() - started > 1.2:
                break
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        assert len(fast.answered()) == 30, "the fast client waited for the slow one"
        assert elapsed < 1.2
        # The slow endpoint never had more than its share of connections at once.
        assert 0 < len(slow.requests) <= 2
        await worker.stop(grace=2)  # the first slow requests time out and are recorded
        release.set()
    by_client: dict[int, set[str]] = {}
    for stored in await deliveries(sessions):
        by_client.setdefault(stored.client_id, set()).add(stored.state)
    assert by_client[fast_world.client_id] == {"delivered"}
    timed_out = [a for a in await attempts(sessions) if a.error]
    assert timed_out and all("timed out" in (a.error or "") for a in timed_out)


async def test_a_crash_mid_request_resends_after_the_lease_with_the_same_id(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    async with Receiver() as receiver:
        world = await hook_world(sessions, clock, receiver.url)
        [mid] = await accept_messages(sessions, clock, world)
        await move(sessions, clock, [mid], Status.SENT)
        crashed = workers(lease_seconds=30)
        [claimed] = await crashed._claim(10)  # leased, sent, then killed before recording
        survivor = workers(lease_seconds=30)
        assert await survivor.step() == 0, "leased: nobody else sends it"
        clock.advance(31)
        assert await survivor.step() == 1
    [request] = receiver.requests
    assert request.webhook_id == claimed.webhook_id and claimed.webhook_id.startswith("msg_")
    [stored] = await deliveries(sessions)
    assert (stored.state, stored.attempts) == ("delivered", 1)


async def test_two_workers_send_each_report_once_and_in_order(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    async with Receiver() as receiver:
        world = await hook_world(sessions, clock, receiver.url)
        ids = await accept_messages(sessions, clock, world, 100)
        await move(sessions, clock, ids, Status.SENT, Status.DELIVERED)
        engines = [create_engine(database_url) for _ in range(2)]
        try:
            pair = [
                workers(sessions=create_sessionmaker(engine), batch_size=15) for engine in engines
            ]

            async def drain(worker: WebhookWorker) -> None:
                idle = 0
                while idle < 3:
                    idle = idle + 1 if await worker.step() == 0 else 0

            await asyncio.gather(*(drain(worker) for worker in pair))
        finally:
            for engine in engines:
                await engine.dispose()
    assert sorted(receiver.successes_by_id().values()) == [1] * 200
    assert len(receiver.requests) == 200
    order: dict[str, list[str]] = {}
    for request in receiver.requests:
        order.setdefault(orjson.loads(request.body)["id"], []).append(status_of(request))
    assert all(statuses == ["sent", "delivered"] for statuses in order.values())


async def test_two_gateways_first_webhooks_carry_different_ids(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
    sqlite_template: Path,
    tmp_path: Path,
) -> None:
    """Two gateways, each with its own database: the same row ids, different webhook-ids
    (Standard Webhooks receivers dedupe on webhook-id across every sender)."""
    other_path = tmp_path / "other-gateway.db"
    shutil.copy(sqlite_template, other_path)
    other_engine = create_engine(f"sqlite:///{other_path}")
    other = create_sessionmaker(other_engine)
    try:
        async with Receiver() as receiver:
            for gateway in (sessions, other):
                world = await hook_world(gateway, clock, receiver.url)
                [mid] = await accept_messages(gateway, clock, world)
                await move(gateway, clock, [mid], Status.SENT)
                assert await workers(sessions=gateway).step() == 1
                [stored] = await deliveries(gateway)
                assert stored.id == 1  # both first: the row id alone would collide
                assert stored.webhook_id is not None
                assert stored.webhook_id == receiver.requests[-1].webhook_id
    finally:
        await other_engine.dispose()
    ids = [r.webhook_id for r in receiver.requests]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(i.startswith("msg_") and len(i) == 36 for i in ids)


# --- Claiming -----------------------------------------------------------------------------


async def test_a_claim_is_one_statement_with_the_credentials_read_as_it_leases(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    """A worker whose endpoints are far from their budget looks and leases in one UPDATE,
    which also returns each client's credentials: as current as a SELECT after it."""
    first = await hook_world(sessions, clock, "http://a.invalid/hook", login="la", password="pa")
    second = await hook_world(sessions, clock, "http://b.invalid/hook", name="beta", login="lb")
    ids = await accept_messages(sessions, clock, first, 3)
    ids += await accept_messages(sessions, clock, second, 3, first_phone=380972000000)
    await move(sessions, clock, ids, Status.SENT, Status.DELIVERED)
    secrets = {w.client_id: await secret_of(sessions, w.client_id) for w in (first, second)}
    worker = workers(batch_size=4)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        claimed = await worker._claim(4)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    [claim] = [s for s in statements if "webhook_deliveries" in s or "clients" in s]
    assert claim.startswith("UPDATE webhook_deliveries")
    # The oldest due, first in line for their message: the `sent` reports, in id order.
    assert [d.id for d in claimed] == sorted(d.id for d in claimed)
    stored = {d.id: d for d in await deliveries(sessions)}
    assert all(json_status(stored[d.id].body) == "sent" for d in claimed)
    assert {d.client_id for d in claimed} == {first.client_id, second.client_id}
    for delivery in claimed:
        expected = {first.client_id: ("la", "pa"), second.client_id: ("lb", None)}
        assert (delivery.login, delivery.password) == expected[delivery.client_id]
        assert delivery.secret == secrets[delivery.client_id]
        assert delivery.webhook_id == stored[delivery.id].webhook_id
        assert stored[delivery.id].locked_until == delivery.lease
    # A rotated secret signs the very next claim's requests.
    async with transaction(sessions) as session:
        rotated = await ensure_secret(session, second.client_id, rotate=True)
    more = await worker._claim(4)
    assert more and {(d.client_id, d.secret) for d in more} == {(second.client_id, rotated)}


async def test_an_endpoint_near_its_budget_is_claimed_only_up_to_it(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    workers: Callable[..., WebhookWorker],
) -> None:
    """When a claim could take an endpoint past its budget, the candidates are read first
    and chosen per endpoint: the busy one gets its budget, the others what is due."""
    busy = await hook_world(sessions, clock, "http://busy.invalid/hook")
    calm = await hook_world(sessions, clock, "http://calm.invalid/hook", name="calm")
    await move(sessions, clock, await accept_messages(sessions, clock, busy, 6), Status.SENT)
    calm_ids = await accept_messages(sessions, clock, calm, 3, first_phone=380972000000)
    await move(sessions, clock, calm_ids, Status.SENT)
    # Two rounds of one request fit a lease: a budget of 2 per endpoint.
    worker = workers(per_host=1, timeout=10, lease_seconds=30, batch_size=10)
    claimed = await worker._claim(10)
    by_client = Counter(d.client_id for d in claimed)
    assert by_client == {busy.client_id: 2, calm.client_id: 2}
    # Both at their budget: nothing more is claimed.
    assert await worker._claim(10) == []
    # The calm endpoint answers: the busy client is left out of the next look (saturated),
    # the calm one's last report is taken.
    ok = Response(at=clock.now(), duration_ms=1, status_code=200, body=b"ok")
    for delivery in claimed:
        if delivery.client_id == calm.client_id:
            worker._results.append(outcome_of(delivery, ok, clock.now()))
    await worker._flush()
    assert [d.client_id for d in await worker._claim(10)] == [calm.client_id]


async def test_a_claim_passes_over_rows_another_worker_is_leasing(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    """PostgreSQL: rows locked by a claim not yet committed are skipped, not waited for,
    and the next due ones are taken instead (SQLite serialises claims: BEGIN IMMEDIATE)."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite claims one at a time")
    world = await hook_world(sessions, clock, "http://a.invalid/hook")
    await move(sessions, clock, await accept_messages(sessions, clock, world, 5), Status.SENT)
    now = clock.now()
    lease = now + timedelta(seconds=60)
    async with transaction(sessions) as holding:
        held = await WebhookRepository(holding).claim(now, 2, lease)
        async with transaction(sessions) as other:
            taken = await asyncio.wait_for(WebhookRepository(other).claim(now, 2, lease), 5)
    assert len(held) == len(taken) == 2
    assert not {d.id for d in held} & {d.id for d in taken}
