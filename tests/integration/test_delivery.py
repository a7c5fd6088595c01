"""Dispatch, receipts and expiry on each database, driven step by step with a frozen clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import World, build_world, history_statuses
from tidings.accounts.models import Client
from tidings.accounts.service import Caller, KeyKind
from tidings.clock import FrozenClock
from tidings.connectors.base import (
    OutboundMessage,
    ReportSink,
    SubmitOutcome,
    SubmitResult,
    SupplierReport,
)
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.delivery.models import DispatchJob, Receipt
from tidings.delivery.reports import ReportQueue
from tidings.delivery.service import (
    RetryPolicy,
    apply_early_receipts,
    claim_batch,
    ingest_reports,
    match_late_receipts,
    record_outcomes,
    sweep_expired,
)
from tidings.delivery.worker import SupplierLane, WorkerOptions
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.models import Message
from tidings.messages.status import Status
from tidings.messages.storing import accept_sms
from tidings.routing.models import Supplier


class ScriptedConnector:
    """A connector whose answers the test decides; it records every submit it sees."""

    def __init__(self, supplier_id: int, answer: str = "accept", delay: float = 0.0) -> None:
        self.supplier_id = supplier_id
        self.answer = answer
        self.delay = delay
        self.submitted: list[int] = []
        self.ids = itertools.count(1)

    async def start(self, reports: ReportSink) -> None:
        self.reports = reports

    async def stop(self) -> None:
        return None

    async def submit(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.submitted.extend(m.message_id for m in batch)
        if self.answer == "raise":
            raise ConnectionError("upstream unreachable")
        if self.answer == "reject":
            return [
                SubmitOutcome(m.message_id, SubmitResult.REJECTED, error="bad sender")
                for m in batch
            ]
        if self.answer == "retry":
            return [
                SubmitOutcome(m.message_id, SubmitResult.RETRY, error="throttled") for m in batch
            ]
        return [
            SubmitOutcome(
                m.message_id, SubmitResult.ACCEPTED, supplier_message_id=f"up-{m.message_id}"
            )
            for m in batch
        ]


async def accept(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    world: World,
    count: int = 1,
    *,
    validity_hours: int = 72,
    send_at: object = None,
) -> list[int]:
    items = [SmsItem(f"38097100{i:04d}", f"ref{i}", "test", "hello") for i in range(count)]
    request = SmsRequest(
        destination="phones" if count > 1 else "phone",
        items=items,
        validity_hours=validity_hours,
        send_at=send_at,  # type: ignore[arg-type]
    )
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with transaction(sessions) as session:
        accepted = await accept_sms(session, clock, caller, request, Limits())
    return [item.id for item in accepted.items]


async def lane_for(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    world: World,
    connector: ScriptedConnector,
    **options: object,
) -> SupplierLane:
    async with sessions() as session:
        supplier = await session.get(Supplier, world.supplier_id)
    assert supplier is not None
    return SupplierLane(supplier, connector, sessions, clock, WorkerOptions(**options))  # type: ignore[arg-type]


async def message(sessions: async_sessionmaker[AsyncSession], message_id: int) -> Message:
    async with sessions() as session:
        found = await session.get(Message, message_id)
    assert found is not None
    return found


async def balance(sessions: async_sessionmaker[AsyncSession], client_id: int) -> Decimal:
    async with sessions() as session:
        client = await session.get(Client, client_id)
    assert client is not None
    return client.balance


async def test_receipt_before_submit_answer_is_kept_and_applied(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    [mid] = await accept(sessions, clock, world)
    # The supplier reports "delivered" for its id before we have recorded that id.
    async with transaction(sessions) as session:
        early = await ingest_reports(
            session,
            clock,
            world.supplier_id,
            [SupplierReport(f"up-{mid}", Status.DELIVERED, clock.now())],
        )
    assert early.matched == [False] and early.applied == []
    assert (await message(sessions, mid)).status == "queued"

    lane = await lane_for(sessions, clock, world, ScriptedConnector(world.supplier_id))
    assert await lane.step()
    stored = await message(sessions, mid)
    assert stored.status == "delivered"
    assert stored.supplier_message_id == f"up-{mid}"
    async with sessions() as session:
        receipt = await session.scalar(select(Receipt))
        assert receipt is not None and receipt.message_id == mid


async def test_early_receipts_of_parts_and_of_whole_messages_are_applied_with_the_answers(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """Receipts stored before their submit answers: the lane's look-up after recording the
    answers applies them, by part for the long message, by message for the short one."""
    world = await build_world(sessions, clock)
    long_id, short_id = await accept(sessions, clock, world, 2)
    async with transaction(sessions) as session:
        early = await ingest_reports(
            session,
            clock,
            world.supplier_id,
            [
                SupplierReport(reported, Status.DELIVERED, clock.now())
                for reported in ("long-1", "long-2", "short")
            ],
        )
    assert early.matched == [False, False, False]
    async with transaction(sessions) as session:
        batch = await claim_batch(session, clock, world.supplier_id, 10, lease_seconds=60)
    outcomes = [
        SubmitOutcome(long_id, SubmitResult.ACCEPTED, "long-1", part_ids=("long-1", "long-2")),
        SubmitOutcome(short_id, SubmitResult.ACCEPTED, "short"),
    ]
    async with transaction(sessions) as session:
        await record_outcomes(session, clock, world.supplier_id, batch, outcomes, RetryPolicy())
    assert (await message(sessions, long_id)).status == "sent"
    async with transaction(sessions) as session:
        applied = await apply_early_receipts(session, clock, outcomes)
    assert sorted(a.message.id for a in applied) == [long_id, short_id]
    settled = await message(sessions, long_id)
    assert settled.status == "delivered"
    assert settled.status_detail is not None and settled.status_detail.startswith("all 2 parts")
    assert (await message(sessions, short_id)).status == "delivered"
    async with sessions() as session:
        receipts = (await session.scalars(select(Receipt).order_by(Receipt.id))).all()
    assert [r.message_id for r in receipts] == [long_id, long_id, short_id]


async def test_status_is_monotonic_and_idempotent(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    [mid] = await accept(sessions, clock, world)
    lane = await lane_for(sessions, clock, world, ScriptedConnector(world.supplier_id))
    await lane.step()
    reports = [
        SupplierReport(f"up-{mid}", Status.DELIVERED, clock.now()),
        SupplierReport(f"up-{mid}", Status.DELIVERED, clock.now()),  # a duplicate
    ]
    async with transaction(sessions) as session:
        await ingest_reports(session, clock, world.supplier_id, reports)
    clock.advance(5)
    async with transaction(sessions) as session:  # a late en-route after the final status
        late = await ingest_reports(
            session,
            clock,
            world.supplier_id,
            [SupplierReport(f"up-{mid}", Status.SENT, clock.now())],
        )
    assert late.matched == [True] and late.applied == []
    assert (await message(sessions, mid)).status == "delivered"
    async with sessions() as session:
        events = await history_statuses(session)
    assert events == ["sent", "delivered"]


async def test_supplier_rejection_refunds(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    [mid] = await accept(sessions, clock, world)
    assert await balance(sessions, world.client_id) == Decimal("9.98")
    lane = await lane_for(sessions, clock, world, ScriptedConnector(world.supplier_id, "reject"))
    await lane.step()
    stored = await message(sessions, mid)
    assert (stored.status, stored.status_detail, stored.time_sent) == (
        "rejected",
        "bad sender",
        None,
    )
    assert await balance(sessions, world.client_id) == Decimal("10")


@pytest.mark.parametrize("answer", ["retry", "raise"])
async def test_temporary_failures_back_off_then_give_up(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, answer: str
) -> None:
    world = await build_world(sessions, clock)
    [mid] = await accept(sessions, clock, world)
    connector = ScriptedConnector(world.supplier_id, answer)
    lane = await lane_for(
        sessions, clock, world, connector, retry=RetryPolicy(max_attempts=3, base_delay=10)
    )
    assert await lane.step()
    assert not await lane.step()  # backing off: not due yet
    async with sessions() as session:
        job = await session.get(DispatchJob, mid)
        assert job is not None and job.attempts == 1 and job.last_error
    clock.advance(10)
    assert await lane.step()
    clock.advance(19)
    assert not await lane.step()  # second delay is 20 s
    clock.advance(1)
    assert await lane.step()
    assert connector.submitted == [mid, mid, mid]
    stored = await message(sessions, mid)
    assert stored.status == "failed" and stored.status_detail.startswith("gave up")
    assert await balance(sessions, world.client_id) == Decimal("10")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DispatchJob)) == 0


async def test_scheduled_messages_wait_for_their_time(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    from datetime import timedelta

    [mid] = await accept(sessions, clock, world, send_at=clock.now() + timedelta(hours=2))
    assert (await message(sessions, mid)).status == "scheduled"
    connector = ScriptedConnector(world.supplier_id)
    lane = await lane_for(sessions, clock, world, connector)
    assert not await lane.step()
    clock.advance(2 * 3600)
    assert await lane.step()
    assert connector.submitted == [mid]
    stored = await message(sessions, mid)
    assert stored.status == "sent"
    assert stored.expires_at == stored.send_at + timedelta(hours=72)  # type: ignore[operator]


async def test_sweeper_leaves_leased_jobs_to_their_worker(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    [mid] = await accept(sessions, clock, world, validity_hours=1)
    # A worker leases the job and dies before recording any answer.
    async with transaction(sessions) as session:
        claimed = await claim_batch(session, clock, world.supplier_id, 10, lease_seconds=7200)
    assert [m.message_id for m in claimed.to_send] == [mid]
    clock.advance(3601)
    async with transaction(sessions) as session:
        assert await sweep_expired(session, clock, grace_seconds=600) == []
    assert (await message(sessions, mid)).status == "queued"
    clock.advance(3600)  # the lease has run out: nobody is working on it any more
    async with transaction(sessions) as session:
        [expired] = await sweep_expired(session, clock, grace_seconds=600)
    assert expired.message.id == mid and expired.message.status == "expired"
    assert await balance(sessions, world.client_id) == Decimal("10")


async def test_sweeper_expiry_refunds_only_unsent(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    first, second = await accept(sessions, clock, world, 2, validity_hours=1)
    lane = await lane_for(
        sessions, clock, world, ScriptedConnector(world.supplier_id), batch_size=1
    )
    await lane.step()  # sends `first`
    clock.advance(3601)
    async with transaction(sessions) as session:
        await sweep_expired(session, clock, grace_seconds=0)
    sent, unsent = await message(sessions, first), await message(sessions, second)
    assert (
        sent.status == "expired" and sent.status_detail == "no final report before validity ended"
    )
    assert unsent.status == "expired" and unsent.status_detail == "validity ended before sending"
    # Only the message that never left is refunded.
    assert await balance(sessions, world.client_id) == Decimal("9.98")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DispatchJob)) == 0


async def test_two_workers_never_send_a_message_twice(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """Two worker processes' worth of lanes (own engines, own pools) on one database."""
    world = await build_world(sessions, clock, balance=Decimal(100))
    ids = await accept(sessions, clock, world, 600)
    engines = [create_engine(database_url) for _ in range(2)]
    connectors = [ScriptedConnector(world.supplier_id, delay=0.005) for _ in range(2)]
    try:
        lanes = [
            await lane_for(create_sessionmaker(engine), clock, world, connector, batch_size=25)
            for engine, connector in zip(engines, connectors, strict=True)
        ]

        async def run(lane: SupplierLane) -> None:
            for _ in range(200):
                if not await lane.step():
                    return

        await asyncio.gather(*(run(lane) for lane in lanes))
    finally:
        for engine in engines:
            await engine.dispose()
    sent = connectors[0].submitted + connectors[1].submitted
    assert sorted(sent) == sorted(ids)  # every message once, none twice
    if database_url.startswith("postgres"):
        assert connectors[0].submitted and connectors[1].submitted  # both really worked
    async with sessions() as session:
        statuses = set((await session.scalars(select(Message.status))).all())
    assert statuses == {"sent"}


@pytest.mark.parametrize(
    "report_commits_first", [True, False], ids=["report-first", "answer-first"]
)
async def test_receipt_racing_its_submit_answer_is_applied_without_waiting_for_the_sweep(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    report_commits_first: bool,
) -> None:
    """The receipt's transaction and the submit answer's run at once (PostgreSQL, READ
    COMMITTED): neither sees the other's rows. Whichever commits second matches them right
    after its commit — the lane's early-receipt pass or the report round's second look."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one write transaction at a time: the race cannot happen")
    world = await build_world(sessions, clock)
    [mid] = await accept(sessions, clock, world)
    async with transaction(sessions) as session:
        batch = await claim_batch(session, clock, world.supplier_id, 10, lease_seconds=60)
    outcomes = await ScriptedConnector(world.supplier_id).submit(batch.to_send)
    reports = ReportQueue(sessions, clock)  # not started: each submit writes alone
    report = SupplierReport(f"up-{mid}", Status.DELIVERED, clock.now())

    # The submit answer's transaction has written but not committed when the report lands.
    async with transaction(sessions) as answer:
        await record_outcomes(answer, clock, world.supplier_id, batch, outcomes, RetryPolicy())
        if report_commits_first:
            await reports.submit(world.supplier_id, [report])  # commits, matches nothing
        else:
            # The report's transaction reads before the answer commits, commits after it.
            other = sessions()
            await other.begin()
            ingested = await ingest_reports(other, clock, world.supplier_id, [report])
            assert ingested.matched == [False]
    if not report_commits_first:
        # The lane's look after its commit comes before the report's commit: nothing yet.
        async with transaction(sessions) as session:
            found = await apply_early_receipts(session, clock, outcomes)
            assert found == []
        await other.commit()
        await other.close()
        assert (await message(sessions, mid)).status == "sent"
        async with transaction(sessions) as session:  # the report round's second look
            applied = await match_late_receipts(session, clock, ids=ingested.receipt_ids)
    else:
        assert (await message(sessions, mid)).status == "sent"
        async with transaction(sessions) as session:  # the lane, after its commit
            applied = await apply_early_receipts(session, clock, outcomes)
    assert [a.change.status for a in applied] == [Status.DELIVERED]
    assert (await message(sessions, mid)).status == "delivered"
