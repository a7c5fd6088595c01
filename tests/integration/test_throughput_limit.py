"""A supplier's throughput limit shared by every process, on each database.

The bookings are checked with a frozen clock the test moves (the arithmetic, and many
concurrent bookers on their own connections, as processes would be); then lanes on
separate engines send a backlog in real time and together keep to the rate.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import World, accept_messages, build_world
from tidings.clock import FrozenClock, SystemClock
from tidings.connectors.base import OutboundMessage, ReportSink, SubmitOutcome, SubmitResult
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.delivery.models import DispatchJob, SupplierRateBucket
from tidings.delivery.ratelimit import SharedThroughputLimit, micros
from tidings.delivery.worker import SupplierLane, WorkerOptions
from tidings.messages.models import Message
from tidings.routing.models import Supplier
from tidings.routing.service import create_supplier


async def limited_supplier(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, rate: float
) -> int:
    async with transaction(sessions) as session:
        supplier = await create_supplier(
            session, clock, name="limited", kind="simulator", throughput=rate
        )
    return supplier.id


async def test_bookings_keep_to_the_rate_and_bank_no_more_than_a_burst(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    supplier_id = await limited_supplier(sessions, clock, 50)
    limit = SharedThroughputLimit(supplier_id, 50, sessions, clock)
    assert limit.burst == 5  # 0.1 s of the rate

    # A fresh bucket is full: one burst goes at once, the next when the rate has paid it.
    assert (await limit.book(5)).wait == 0
    assert (await limit.book(5)).wait == pytest.approx(0.1)
    assert (await limit.book(3)).wait == pytest.approx(0.16)  # 13 booked, 5 may be ahead
    clock.advance(0.16)
    assert (await limit.book(2)).wait == pytest.approx(0.04)

    # Ten idle seconds bank one burst, not 500 messages.
    clock.advance(10)
    assert (await limit.book(5)).wait == 0
    assert (await limit.book(1)).wait == pytest.approx(0.02)

    # A booking that does not go is given back: the next one takes its place.
    unused = await limit.book(5)
    assert unused.wait == pytest.approx(0.12)
    await limit.give_back(unused)
    assert (await limit.book(5)).wait == pytest.approx(0.12)

    async with sessions() as session:
        bucket = await session.get(SupplierRateBucket, supplier_id)
    assert bucket is not None
    # Integer microseconds: 0.1 s + 0.02 s + 0.1 s booked past the clock's now.
    assert bucket.booked_until_us == micros(clock.now()) + 220_000


async def test_batch_size_follows_the_rate_and_how_long_a_batch_takes(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    supplier_id = await limited_supplier(sessions, clock, 50)
    limit = SharedThroughputLimit(supplier_id, 50, sessions, clock)
    assert limit.batch_limit(500) == 5
    limit.busy_for(0.4)  # a slow supplier: what the rate allows in that time
    assert limit.batch_limit(500) == 20
    assert limit.batch_limit(8) == 8
    limit.busy_for(30)  # never more than a second's worth
    assert limit.batch_limit(500) == 50
    slow = SharedThroughputLimit(supplier_id, 0.5, sessions, clock)
    assert slow.burst == 1 and slow.batch_limit(500) == 1
    assert slow.span_us(1) == 2_000_000
    with pytest.raises(ValueError):
        SharedThroughputLimit(supplier_id, 0, sessions, clock)


def assert_within_rate(
    sends: Sequence[tuple[float, int]], rate: float, burst: int, windows: Sequence[float]
) -> None:
    """No window of each length holds more than rate × length + one burst (+1 for the
    microsecond rounding of the bookings)."""
    ordered = sorted(sends)
    for length in windows:
        for start, _ in ordered:
            inside = sum(n for at, n in ordered if start <= at < start + length)
            assert inside <= rate * length + burst + 1, (length, start, inside)


async def test_concurrent_bookers_on_their_own_connections_never_exceed_the_rate(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    rate, bookers, rounds = 50.0, 4, 25
    supplier_id = await limited_supplier(sessions, clock, rate)
    engines = [create_engine(database_url) for _ in range(bookers)]
    sends: list[tuple[float, int]] = []
    booked_us = 0
    started_us = micros(clock.now())
    generator = random.Random(7)

    async def booker(limit: SharedThroughputLimit) -> None:
        nonlocal booked_us
        for _ in range(rounds):
            count = generator.randint(1, limit.burst)
            booking = await limit.book(count)
            # No await since book() read the clock: now + wait is when this batch may go.
            sends.append((clock.now().timestamp() + booking.wait, count))
            booked_us += booking.span_us

    async def time_passes() -> None:
        for _ in range(200):
            clock.advance(0.002)  # slower than the bookers book: the bucket stays booked
            await asyncio.sleep(0.001)

    try:
        limits = [
            SharedThroughputLimit(supplier_id, rate, create_sessionmaker(engine), clock)
            for engine in engines
        ]
        # One booking before the clock starts to move: from here on the bucket is booked
        # ahead of the clock, so its end is exactly the sum of the bookings.
        first = await limits[0].book(1)
        sends.append((clock.now().timestamp() + first.wait, 1))
        booked_us += first.span_us
        ticking = asyncio.create_task(time_passes())
        await asyncio.wait_for(asyncio.gather(*(booker(limit) for limit in limits)), 60)
        ticking.cancel()
    finally:
        for engine in engines:
            await engine.dispose()

    assert len(sends) == bookers * rounds + 1
    async with sessions() as session:
        bucket = await session.get(SupplierRateBucket, supplier_id)
    assert bucket is not None
    # Every booking counted once (no update lost to a concurrent one): the bucket holds
    # exactly what was booked, since nobody left it idle.
    assert bucket.booked_until_us == started_us + booked_us
    assert_within_rate(sends, rate, limits[0].burst, windows=[0.1, 0.5, 1.0])
    # And the bookings were not more timid than the rate: the last one goes on time.
    total = sum(n for _, n in sends)
    last = max(at for at, _ in sends)
    assert last - started_us / 1e6 == pytest.approx((total - limits[0].burst) / rate, abs=0.01)


class RecordingConnector:
    """Takes every message, noting when each batch arrived (monotonic seconds, size)."""

    def __init__(self, arrivals: list[tuple[float, int]]) -> None:
        self.arrivals = arrivals

    async def start(self, reports: ReportSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def submit(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        self.arrivals.append((time.monotonic(), len(batch)))
        return [
            SubmitOutcome(
                m.message_id, SubmitResult.ACCEPTED, supplier_message_id=f"s{m.message_id}"
            )
            for m in batch
        ]


async def test_lanes_of_several_processes_share_one_rate(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Real time: the lanes sleep what their bookings tell them.
    clock = FrozenClock(datetime.now(UTC))
    world: World = await build_world(sessions, clock, balance=100)
    rate, count = 40.0, 60
    async with transaction(sessions) as session:
        supplier = await session.get(Supplier, world.supplier_id)
        assert supplier is not None
        supplier.throughput = rate
    await accept_messages(sessions, clock, world, count)
    async with sessions() as session:
        supplier = await session.get(Supplier, world.supplier_id)
    assert supplier is not None

    arrivals: list[tuple[float, int]] = []
    engines = [create_engine(database_url) for _ in range(3)]  # one per "process"
    lanes = [
        SupplierLane(
            supplier,
            RecordingConnector(arrivals),
            create_sessionmaker(engine),
            SystemClock(),
            WorkerOptions(),
        )
        for engine in engines
    ]

    async def drain(lane: SupplierLane) -> None:
        while await lane.step():
            pass

    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(drain(lane) for lane in lanes)), 30)
    finally:
        for engine in engines:
            await engine.dispose()
    elapsed = time.monotonic() - started

    assert sum(n for _, n in arrivals) == count
    async with sessions() as session:
        sent = await session.scalar(
            select(func.count()).select_from(Message).where(Message.status == "sent")
        )
    assert sent == count
    burst = lanes[0].bucket.burst if lanes[0].bucket is not None else 0
    assert burst == 4
    # A batch goes at once when its turn comes: the largest one is the burst (more than 4
    # only when a lane's steps took longer than 0.1 s on a loaded machine).
    largest = max(n for _, n in arrivals)
    assert elapsed >= (count - largest) / rate - 0.05
    # A scheduling hiccup may make a batch late, never early: allow one extra burst.
    assert_within_rate(arrivals, rate, largest + burst, windows=[0.5, 1.0])


async def test_a_wait_longer_than_half_the_lease_puts_the_batch_back_unsent(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with transaction(sessions) as session:
        supplier = await session.get(Supplier, world.supplier_id)
        assert supplier is not None
        supplier.throughput = 1.0
    [message_id] = await accept_messages(sessions, clock, world, 1)
    # Other processes have booked the next ten seconds of this supplier.
    others = SharedThroughputLimit(world.supplier_id, 1.0, sessions, clock)
    await others.book(10)
    async with sessions() as session:
        supplier = await session.get(Supplier, world.supplier_id)
        before = await session.get(SupplierRateBucket, world.supplier_id)
    assert supplier is not None and before is not None
    booked_before = before.booked_until_us

    arrivals: list[tuple[float, int]] = []
    lane = SupplierLane(
        supplier, RecordingConnector(arrivals), sessions, clock, WorkerOptions(lease_seconds=4)
    )
    assert await lane.step()
    assert arrivals == []  # not sent: its turn is 10 s away, the lease lasts 4
    async with sessions() as session:
        job = await session.get(DispatchJob, message_id)
        bucket = await session.get(SupplierRateBucket, world.supplier_id)
        stored = await session.get(Message, message_id)
    assert stored is not None and stored.status == "queued"
    assert job is not None and job.locked_until is None
    assert job.due_at == clock.now() + timedelta(seconds=10)  # when its turn would have come
    assert job.last_error == "held back by the supplier's throughput limit"
    assert bucket is not None and bucket.booked_until_us == booked_before  # given back
    assert job.attempts == 0  # our own limit held it back: no attempt used up, no failover
