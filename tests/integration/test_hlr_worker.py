"""The HLR worker on each database: simulator results, provider retries and give-up with a
refund, leases, and result callbacks with failures and retries on seed 004's schedule.

Time is a FrozenClock; workers are stepped by hand. Receivers are real HTTP servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.hlr_support import balance_of, build_hlr_world, lookups
from tests.support import Receiver, World
from tidings.accounts.service import Caller, KeyKind
from tidings.clock import FrozenClock
from tidings.connectors.hlr.base import HlrAnswer, Outcome
from tidings.connectors.hlr.simulator import HlrSimulator
from tidings.db.engine import transaction
from tidings.hlr.repository import HlrRepository
from tidings.hlr.results import Recorded, RetryPolicy, record_answers
from tidings.hlr.service import HlrItem, HlrRequest, accept_hlr, prepare_hlr
from tidings.hlr.wire import result_body
from tidings.hlr.worker import HlrOptions, HlrWorker
from tidings.messages.catalog import load_catalog
from tidings.numbering import CountryTable
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery
from tidings.webhooks.repository import WebhookRepository
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

KETCHUP_DELAYS = [60, 360, 3600, 43200, 86400]
NUMBERS = ["380505142320", "380972920000", "380932990000", "48501234567"]


@pytest.fixture
async def hlr_workers(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> AsyncIterator[Callable[..., Any]]:
    made: list[HlrWorker] = []

    async def make(**options: Any) -> HlrWorker:
        worker = HlrWorker(sessions, clock, CountryTable.load(), HlrOptions(**options))
        await worker.refresh_providers()
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.stop()


@pytest.fixture
async def webhook_worker(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> AsyncIterator[WebhookWorker]:
    worker = WebhookWorker(sessions, clock, WebhookOptions())
    yield worker
    await worker.stop(grace=1)


async def accept(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    world: World,
    numbers: list[str],
    *,
    callback_url: str | None = None,
) -> list[int]:
    async with sessions() as session:
        catalog = await load_catalog(session)
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    request = HlrRequest(
        items=[HlrItem(n, f"ref{i}", callback_url=callback_url) for i, n in enumerate(numbers)],
        is_batch=True,
    )
    async with transaction(sessions) as session:
        accepted = await accept_hlr(session, clock, prepare_hlr(catalog, caller, request, 1000))
    return [item.id for item in accepted.items]


async def test_simulator_results_are_stored(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, hlr_workers: Any
) -> None:
    world, provider_id = await build_hlr_world(sessions, clock)
    await accept(sessions, clock, world, NUMBERS)
    worker = await hlr_workers()
    clock.advance(3)
    recorded = await worker.step()
    assert (recorded.finished, recorded.pending, recorded.retried) == (4, 0, 0)
    assert (await worker.step()).finished == 0
    simulator = HlrSimulator(provider_id, {})
    for stored in await lookups(sessions):
        expected = simulator.answer(stored.msisdn)
        assert (stored.status, stored.network, stored.ported, stored.roaming) == (
            expected.status,
            expected.network,
            expected.ported,
            expected.roaming,
        )
        assert stored.status_at == stored.sent_at == clock.now()
        assert stored.due_at is None and stored.locked_until is None
        body = result_body(stored)
        assert body["statusDatetime"] == "2026-03-01T12:00:03+00:00"
        assert body["createdDatetime"] == "2026-03-01T12:00:00+00:00"
    # Nothing is refunded for an answered lookup.
    assert await balance_of(sessions, world.client_id) == Decimal("10") - Decimal("0.009")


async def test_provider_failures_retry_then_fail_and_refund(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    hlr_workers: Any,
    webhook_worker: WebhookWorker,
) -> None:
    async with Receiver() as receiver:
        world, _ = await build_hlr_world(
            sessions, clock, options={"retry_ratio": 1}, callback_url=receiver.url
        )
        [lookup_id] = await accept(sessions, clock, world, NUMBERS[:1])
        assert await balance_of(sessions, world.client_id) == Decimal("9.998")
        policy = RetryPolicy(max_attempts=3)
        worker = await hlr_workers(policy=policy)
        assert (await worker.step()).retried == 1
        for delay in (2, 4):  # back-off doubles from 2 s
            clock.advance(delay - 1)
            assert (await worker.step()).retried == 0, "not due yet"
            clock.advance(1)
            recorded = await worker.step()
        assert recorded.finished == 1
        [stored] = await lookups(sessions)
        assert stored.status == "failed" and stored.last_error == "simulated HLR outage"
        assert await balance_of(sessions, world.client_id) == Decimal(10)
        assert await webhook_worker.step() == 1
    [request] = receiver.requests
    body = orjson.loads(request.body)
    assert body["id"] == str(lookup_id) and body["status"] == "failed"


async def test_results_are_pushed_with_retries_on_the_seed_schedule(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    hlr_workers: Any,
    webhook_worker: WebhookWorker,
) -> None:
    async with Receiver(fail_first=3) as client_hook, Receiver() as request_hook:
        world, _ = await build_hlr_world(sessions, clock, callback_url=client_hook.url)
        await accept(sessions, clock, world, NUMBERS[:1])
        await accept_one(sessions, clock, world, NUMBERS[1], "own", request_hook.url)
        worker = await hlr_workers()
        assert (await worker.step()).finished == 2
        assert await webhook_worker.step() == 2
        for delay in KETCHUP_DELAYS[:3]:
            clock.advance(delay - 1)
            assert await webhook_worker.step() == 0, "not due yet"
            clock.advance(1)
            assert await webhook_worker.step() == 1
        assert await webhook_worker.step() == 0
    assert [r.status for r in client_hook.requests] == [500, 500, 500, 200]
    assert [r.status for r in request_hook.requests] == [200]
    stored = {s.reference: s for s in await lookups(sessions)}
    assert orjson.loads(client_hook.requests[-1].body) == result_body(stored["ref0"])
    assert orjson.loads(request_hook.requests[0].body) == result_body(stored["own"])
    assert client_hook.requests[0].headers["content-type"].startswith("application/json")
    async with sessions() as session:
        deliveries = list(await session.scalars(select(WebhookDelivery)))
        attempts = list(await session.scalars(select(WebhookAttempt)))
        log = await WebhookRepository(session).with_attempts(deliveries)
    assert {d.event for d in deliveries} == {"hlr.result"}
    assert all(d.state == "delivered" for d in deliveries)
    # The log shows all five; the first-try success of the second is kept on its delivery
    # row, not as an attempt row (issue 18).
    assert sum(len(tries) for _, tries in log) == 5
    assert len(attempts) == 4


async def test_a_callback_that_never_succeeds_is_given_up_after_five_retries(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    hlr_workers: Any,
    webhook_worker: WebhookWorker,
) -> None:
    async with Receiver(fail_first=100) as hook:
        world, _ = await build_hlr_world(sessions, clock, callback_url=hook.url)
        await accept(sessions, clock, world, NUMBERS[:1])
        await (await hlr_workers()).step()
        assert await webhook_worker.step() == 1
        for delay in KETCHUP_DELAYS:
            clock.advance(delay)
            assert await webhook_worker.step() == 1
        clock.advance(10 * 86400)
        assert await webhook_worker.step() == 0
    assert len(hook.requests) == 6
    async with sessions() as session:
        [delivery] = list(await session.scalars(select(WebhookDelivery)))
    assert (delivery.state, delivery.attempts) == ("failed", 6)


async def test_no_callback_url_means_no_delivery(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, hlr_workers: Any
) -> None:
    world, _ = await build_hlr_world(sessions, clock)
    await accept(sessions, clock, world, NUMBERS[:2])
    assert (await (await hlr_workers()).step()).finished == 2
    async with sessions() as session:
        assert list(await session.scalars(select(WebhookDelivery))) == []


async def test_a_lapsed_lease_is_claimed_again_and_the_old_claim_records_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world, provider_id = await build_hlr_world(sessions, clock)
    await accept(sessions, clock, world, NUMBERS[:2])
    now = clock.now()
    async with transaction(sessions) as session:
        first = await HlrRepository(session).claim(
            [provider_id], now, now + timedelta(seconds=60), 10
        )
    async with transaction(sessions) as session:
        assert (
            await HlrRepository(session).claim([provider_id], now, now + timedelta(seconds=60), 10)
            == []
        )
    clock.advance(61)
    later = clock.now()
    async with transaction(sessions) as session:
        second = await HlrRepository(session).claim(
            [provider_id], later, later + timedelta(seconds=60), 10
        )
    assert [c.id for c in first] == [c.id for c in second]
    assert [c.attempts for c in second] == [2, 2]
    async with transaction(sessions) as session:
        changed = await HlrRepository(session).update_held(
            now + timedelta(seconds=60),
            [{"lookup_id": c.id, "status": "active"} for c in first],
            ["status"],
        )
    assert changed == []
    assert {s.status for s in await lookups(sessions)} == {"sent"}


async def test_concurrent_claims_never_share_a_lookup(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world, provider_id = await build_hlr_world(sessions, clock)
    numbers = [f"38097292{i:04d}" for i in range(40)]
    await accept(sessions, clock, world, numbers)
    now = clock.now()

    async def claim() -> list[int]:
        async with transaction(sessions) as session:
            claimed = await HlrRepository(session).claim(
                [provider_id], now, now + timedelta(seconds=60), 15
            )
        return [c.id for c in claimed]

    results = await asyncio.gather(*(claim() for _ in range(4)))
    flat = [i for ids in results for i in ids]
    assert len(flat) == len(set(flat)) == 40


async def accept_one(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    world: World,
    number: str,
    reference: str,
    callback_url: str,
) -> int:
    async with sessions() as session:
        catalog = await load_catalog(session)
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    request = HlrRequest(items=[HlrItem(number, reference, callback_url=callback_url)])
    async with transaction(sessions) as session:
        accepted = await accept_hlr(session, clock, prepare_hlr(catalog, caller, request, 10))
    return accepted.items[0].id


async def test_a_pending_query_is_asked_again_until_its_result_is_overdue(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """What `hlr_http` answers while the upstream has no result yet: pending, with its id."""
    world, provider_id = await build_hlr_world(sessions, clock, kind="hlr_http", options=UPSTREAM)
    [lookup_id] = await accept(sessions, clock, world, NUMBERS[:1])
    policy = RetryPolicy(poll_seconds=2, result_timeout=3600)

    async def answer_pending() -> Recorded:
        now = clock.now()
        lease = now + timedelta(seconds=60)
        async with transaction(sessions) as session:
            claimed = await HlrRepository(session).claim([provider_id], now, lease, 10)
        answers = {c.id: HlrAnswer(c.id, Outcome.PENDING, provider_ref="up-1") for c in claimed}
        async with transaction(sessions) as session:
            return await record_answers(session, clock, lease, claimed, answers, policy)

    assert (await answer_pending()).pending == 1
    [stored] = await lookups(sessions)
    assert (stored.status, stored.provider_ref, stored.sent_at) == ("sent", "up-1", clock.now())
    clock.advance(1)
    assert (await answer_pending()).pending == 0, "asked again only after poll_seconds"
    clock.advance(1)
    assert (await answer_pending()).pending == 1
    clock.advance(3600)
    assert (await answer_pending()).finished == 1
    [stored] = await lookups(sessions)
    assert (stored.id, stored.status, stored.due_at) == (lookup_id, "unknown", None)
    # The provider took it: no refund.
    assert await balance_of(sessions, world.client_id) == Decimal("9.998")


UPSTREAM = {"url": "http://127.0.0.1:9", "api_key": "unused"}
