"""Failover and circuit breakers, on each database, stepped by hand with a frozen clock."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_delivery import ScriptedConnector, message
from tests.support import World, build_world, history_statuses
from tidings.accounts.service import Caller, KeyKind
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.models import DispatchJob
from tidings.delivery.worker import SupplierLane, WorkerOptions
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.queries import history
from tidings.messages.storing import accept_sms
from tidings.observability.metrics import Metrics
from tidings.routing.cache import PlanCache
from tidings.routing.health import ensure_rows
from tidings.routing.models import Supplier, SupplierHealth
from tidings.routing.service import create_route, create_supplier

_numbers = itertools.count()


async def accept(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, world: World, count: int = 1
) -> list[int]:
    """Accept `count` messages to fresh Ukrainian numbers."""
    items = [SmsItem(f"38097{next(_numbers):07d}", None, "test", "hello") for _ in range(count)]
    request = SmsRequest(destination="phones" if count > 1 else "phone", items=items)
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with transaction(sessions) as session:
        accepted = await accept_sms(session, clock, caller, request, Limits())
    return [item.id for item in accepted.items]


async def two_suppliers(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, **options: object
) -> tuple[World, int, int]:
    """Routes to UA: a (priority 10) first, b (priority 5) next; the world's default last."""
    world = await build_world(sessions, clock)
    async with transaction(sessions) as session:
        a = await create_supplier(session, clock, name="a", kind="simulator", options=options)
        b = await create_supplier(session, clock, name="b", kind="simulator")
        await create_route(session, clock, type_="sms", supplier="a", country="UA", priority=10)
        await create_route(session, clock, type_="sms", supplier="b", country="UA", priority=5)
        await ensure_rows(session, [a.id, b.id, world.supplier_id], clock.now())
    return world, a.id, b.id


async def lane(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    supplier_id: int,
    connector: ScriptedConnector,
    metrics: Metrics | None = None,
    batch_size: int = 500,
) -> SupplierLane:
    async with sessions() as session:
        supplier = await session.get(Supplier, supplier_id)
    assert supplier is not None
    return SupplierLane(
        supplier,
        connector,
        sessions,
        clock,
        WorkerOptions(batch_size=batch_size),
        metrics=metrics,
        plans=PlanCache(sessions, clock, ttl=0),
    )


async def job_of(sessions: async_sessionmaker[AsyncSession], mid: int) -> DispatchJob | None:
    async with sessions() as session:
        return await session.get(DispatchJob, mid)


async def health(sessions: async_sessionmaker[AsyncSession], supplier_id: int) -> SupplierHealth:
    async with sessions() as session:
        found = await session.get(SupplierHealth, supplier_id)
    assert found is not None
    return found


@pytest.mark.parametrize("answer", ["raise", "retry"])
async def test_a_supplier_that_cannot_take_a_message_hands_it_to_the_next(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, answer: str
) -> None:
    world, a, b = await two_suppliers(sessions, clock)
    [mid] = await accept(sessions, clock, world)
    assert (await message(sessions, mid)).supplier_id == a
    down = ScriptedConnector(a, answer)
    assert await (await lane(sessions, clock, a, down)).step()
    job = await job_of(sessions, mid)
    assert job is not None and job.supplier_id == b and job.due_at == clock.now()
    assert job.locked_until is None and job.attempts == 1
    assert (await message(sessions, mid)).supplier_id == b
    up = ScriptedConnector(b)
    assert await (await lane(sessions, clock, b, up)).step()
    assert up.submitted == [mid] and down.submitted == [mid]
    stored = await message(sessions, mid)
    assert stored.status == "sent" and stored.supplier_id == b
    async with sessions() as session:
        steps = await history(session, stored)
    assert [status for status, _, _ in steps] == ["queued", "queued", "sent"]
    detail = steps[1][2]
    assert detail is not None and detail.startswith("attempt 1 via a: ")
    assert detail.endswith("; moved to b")


async def test_a_permanent_refusal_does_not_fail_over(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world, a, _ = await two_suppliers(sessions, clock)
    [mid] = await accept(sessions, clock, world)
    assert await (await lane(sessions, clock, a, ScriptedConnector(a, "reject"))).step()
    stored = await message(sessions, mid)
    assert stored.status == "rejected" and stored.supplier_id == a
    assert await job_of(sessions, mid) is None
    async with sessions() as session:
        events = await history_statuses(session)
    assert events == ["rejected"]


async def test_the_last_candidate_retries_itself_with_back_off(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)  # one supplier: nowhere to go
    [mid] = await accept(sessions, clock, world)
    only = ScriptedConnector(world.supplier_id, "raise")
    assert await (await lane(sessions, clock, world.supplier_id, only)).step()
    job = await job_of(sessions, mid)
    assert job is not None and job.supplier_id == world.supplier_id and job.due_at > clock.now()


async def test_five_failures_in_a_row_take_a_supplier_out_until_a_probe_answers(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world, a, b = await two_suppliers(sessions, clock, breaker_cooldown=30)
    first = await accept(sessions, clock, world, 5)
    metrics = Metrics()
    down = ScriptedConnector(a, "raise")
    lane_a = await lane(sessions, clock, a, down, metrics)
    assert await lane_a.step()
    state = await health(sessions, a)
    assert state.state == "open" and state.consecutive_failures == 5
    assert "5 failures in a row" in (state.reason or "")
    assert b'tidings_supplier_up{supplier_id="%d"} 0.0' % a in generate_latest(metrics.registry)
    # Out of routing: new messages go to b from the start.
    [later] = await accept(sessions, clock, world)
    assert (await message(sessions, later)).supplier_id == b
    for mid in first:
        assert (await message(sessions, mid)).supplier_id == b
    # Before the cool-down: nothing is probed.
    clock.advance(29)
    assert not await lane_a.step()
    assert (await health(sessions, a)).state == "open"
    # After it the lane probes (half-open: in routing again, one message at a time).
    clock.advance(1)
    assert not await lane_a.step()  # nothing queued for a: the breaker waits half-open
    assert (await health(sessions, a)).state == "half"
    [probe] = await accept(sessions, clock, world)
    assert (await message(sessions, probe)).supplier_id == a
    down.answer = "accept"
    assert await lane_a.step()
    assert (await health(sessions, a)).state == "closed"
    assert (await message(sessions, probe)).status == "sent"
    assert b'tidings_supplier_up{supplier_id="%d"} 1.0' % a in generate_latest(metrics.registry)


async def test_a_failed_probe_keeps_the_supplier_out_for_another_cool_down(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world, a, _ = await two_suppliers(sessions, clock, breaker_cooldown=30, breaker_failures=1)
    await accept(sessions, clock, world)
    down = ScriptedConnector(a, "raise")
    lane_a = await lane(sessions, clock, a, down)
    assert await lane_a.step()
    assert (await health(sessions, a)).state == "open"
    clock.advance(30)
    assert not await lane_a.step()
    [probe] = await accept(sessions, clock, world)
    assert await lane_a.step()  # the probe fails: moved on, and a is out again
    state = await health(sessions, a)
    assert state.state == "open"
    assert state.probe_at is not None and (state.probe_at - clock.now()).total_seconds() == 30
    assert (await message(sessions, probe)).supplier_id != a


async def test_a_supplier_out_of_routing_hands_over_its_queue_untried(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world, a, b = await two_suppliers(sessions, clock)
    mids = await accept(sessions, clock, world, 10)
    down = ScriptedConnector(a, "raise")
    lane_a = await lane(sessions, clock, a, down, batch_size=5)
    assert await lane_a.step()  # five fail: the breaker opens
    assert await lane_a.step()  # the other five are handed over without a try
    assert len(down.submitted) == 5
    for mid in mids:
        job = await job_of(sessions, mid)
        assert job is not None and job.supplier_id == b
        assert job.attempts == (1 if mid in down.submitted else 0)
    assert not await lane_a.step()


async def test_a_failure_rate_over_the_window_opens_the_breaker(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world, a, _ = await two_suppliers(
        sessions, clock, breaker_failures=1000, breaker_rate=0.5, breaker_min_volume=4
    )
    connector = ScriptedConnector(a)
    lane_a = await lane(sessions, clock, a, connector)
    await accept(sessions, clock, world, 2)
    assert await lane_a.step()  # 2 answered
    connector.answer = "raise"
    for _ in range(3):
        await accept(sessions, clock, world)
        assert await lane_a.step()
        clock.advance(1)
    state = await health(sessions, a)
    assert state.state == "open" and "3 of 5 failed" in (state.reason or "")
