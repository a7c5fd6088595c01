"""Time-ordered ids, weekly partitions and retention (docs/architecture.md, "Partitions and
retention"), on both databases; the in-place migration of a database with history on
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from bench.partitions import fill_history
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tests.conftest import fresh_postgres_database
from tests.integration.test_webhooks import hook_world, move
from tests.support import Receiver, accept_messages
from tidings.cli.main import app
from tidings.clock import FrozenClock
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.ids import MAX_ID, first_id_at, time_of_id
from tidings.db.migrate import downgrade, upgrade
from tidings.db.partitions import (
    create_weeks,
    ensure_weeks,
    partition_name,
    partitions,
    week_bounds,
    week_of,
)
from tidings.messages.models import Message, MessageEvent, Task
from tidings.messages.repository import MessageRepository
from tidings.messages.status import Status
from tidings.retention.service import HistoryMaintenance, prune
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.worker import WebhookOptions, WebhookWorker


def _wall() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


async def _where(sessions: async_sessionmaker[AsyncSession], message_id: int) -> str | None:
    """The partition a message's row is in (None on SQLite, or when it is gone)."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        return None
    async with sessions() as session:
        found: str | None = await session.scalar(
            text("SELECT tableoid::regclass::text FROM messages WHERE id = :id"), {"id": message_id}
        )
    return found


def test_ids_fit_javascript_and_tell_their_time() -> None:
    moment = datetime(2026, 12, 4, 15, 30, 7, tzinfo=UTC)
    assert time_of_id(first_id_at(moment) + 12345) == moment
    assert first_id_at(datetime(2156, 1, 1, tzinfo=UTC)) < MAX_ID  # 2**53 - 1
    assert first_id_at(moment) > 2**31  # never one of the 32-bit ids from before


async def test_message_and_task_ids_are_time_ordered_and_land_in_this_weeks_partition(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await hook_world(sessions, clock, None)
    before = first_id_at(_wall() - timedelta(seconds=5))
    ids = await accept_messages(sessions, clock, world, 3)
    async with sessions() as session:
        [task_id] = list(await session.scalars(select(Task.id)))
    after = first_id_at(_wall() + timedelta(seconds=5))
    assert all(before <= i < after for i in [*ids, task_id])
    assert task_id not in ids and len(set(ids)) == 3
    where = await _where(sessions, ids[0])
    if where is not None:
        assert where == partition_name("messages", week_of(_wall()))
    async with sessions() as session:  # a look-up by id finds it
        assert (await MessageRepository(session).get(world.client_id, ids[1])) is not None


async def test_prune_drops_the_expired_week_but_keeps_what_still_awaits_a_report_or_webhook(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    postgres = sessions.kw["bind"].dialect.name == "postgresql"
    async with Receiver() as receiver:
        world = await hook_world(sessions, clock, receiver.url)
        done, waiting, unsent = await accept_messages(sessions, clock, world, 3)
        await move(sessions, clock, [done], Status.SENT, Status.DELIVERED)
        worker = WebhookWorker(sessions, clock, WebhookOptions())
        try:
            assert await worker.step() == 1  # done's two reports go out (in order, one claim)
            while await worker.step():
                pass
            # `unsent` is final, but its reports have not gone out yet; `waiting` awaits its
            # supplier's report.
            await move(sessions, clock, [waiting], Status.SENT)
            await move(sessions, clock, [unsent], Status.SENT, Status.DELIVERED)
            sent_before = len(receiver.requests)

            # 100 days from now, with 90 kept: this week is past retention.
            later = _wall() + timedelta(days=100)
            report = await prune(sessions, later, 90)
            summary = report.as_json()
            assert summary["messages_removed"] == 1
            if postgres:
                week = week_of(_wall())
                found = [d for d in report.partitions if d.week == week]
                assert len(found) == 1, report.partitions
                [dropped] = found
                assert dropped.partitions == [
                    partition_name("messages", week),
                    partition_name("message_events", week),
                ]
                assert (dropped.rows, dropped.kept) == (3, 2)
                assert await _where(sessions, waiting) == "messages_default"
            async with sessions() as session:
                left = set(await session.scalars(select(Message.id)))
                kept_message = await session.get(Message, waiting)
                assert kept_message is not None
                events = await MessageRepository(session).events(kept_message)
                gone_events = await session.scalar(
                    select(func.count()).where(MessageEvent.message_id == done)
                )
            assert left == {waiting, unsent}
            assert [e.status for e in events] == ["sent"] and gone_events == 0

            # What was owed still goes out: unsent's reports, and waiting's, its final one too.
            while await worker.step():
                pass
            async with transaction(sessions) as session:
                from tidings.messages.changes import StatusChange
                from tidings.messages.service import apply_changes

                await apply_changes(
                    session, clock, [StatusChange(waiting, Status.DELIVERED, clock.now())]
                )
            while await worker.step():
                pass
        finally:
            await worker.stop(grace=1)
    late = [orjson.loads(r.body) for r in receiver.requests[sent_before:]]
    assert {(int(b["id"]), b["status"]) for b in late} == {
        (unsent, "sent"),
        (unsent, "delivered"),
        (waiting, "sent"),
        (waiting, "delivered"),
    }
    async with sessions() as session:
        states = set(await session.scalars(select(WebhookDelivery.state)))
    assert states == {"delivered"}
    # Closed since: the next run removes them too (on PostgreSQL from the DEFAULT partition).
    again = await prune(sessions, later, 90)
    assert again.as_json()["messages_removed"] == 2
    async with sessions() as session:
        assert list(await session.scalars(select(Message.id))) == []
    if postgres:  # this week made again: the tests share the database
        async with transaction(sessions) as session:
            await ensure_weeks(session, _wall())


async def test_the_daily_run_is_scheduled_by_a_row_shared_by_workers(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    first = HistoryMaintenance(sessions, clock, 90)
    second = HistoryMaintenance(sessions, clock, 90)  # another worker, or a restart
    assert await first.run_if_due() is not None
    assert await second.run_if_due() is None  # it ran today, whoever ran it
    clock.advance(23 * 3600)
    assert await HistoryMaintenance(sessions, clock, 90).run_if_due() is None
    clock.advance(2 * 3600)
    results = await asyncio.gather(first.run_if_due(), second.run_if_due())
    assert sum(r is not None for r in results) == 1  # one of them, not both


async def test_tidings_db_prune_prints_what_it_removed(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await hook_world(sessions, clock, None)
    [fresh] = await accept_messages(sessions, clock, world)
    month_ago = _wall() - timedelta(days=30)
    async with sessions() as session:
        like = await session.get(Message, fresh)
    assert like is not None
    old = first_id_at(month_ago) + 1
    async with transaction(sessions) as session:
        if sessions.kw["bind"].dialect.name == "postgresql":
            await create_weeks(session, [week_of(month_ago)])
        row = {**_row(like, "old"), "id": old, "time_in": month_ago, "status": "delivered"}
        await session.execute(insert(Message), [row])

    result = await asyncio.to_thread(  # the command runs its own event loop
        CliRunner().invoke,
        app,
        ["db", "prune", "--days", "7", "--json"],
        env={"TIDINGS_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["messages_removed"] == 1 and printed["messages_kept_open"] == 0
    async with sessions() as session:
        assert list(await session.scalars(select(Message.id))) == [fresh]


# --- The migration of a database with history (PostgreSQL) ----------------------------------

HISTORY = int(os.environ.get("TIDINGS_MIGRATION_ROWS", "50000"))  # bench/partitions.py: 1M


@pytest.fixture
def scratch_database() -> Iterator[str]:
    with fresh_postgres_database("tidings_migrate") as url:
        yield url


async def _scalar(url: str, sql: str) -> Any:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_migration_moves_a_database_with_history_into_weekly_partitions(
    scratch_database: str,
) -> None:
    url = scratch_database
    this_week = await fill_history(url, HISTORY)
    events = await _scalar(url, "SELECT count(*) FROM message_events")
    await _scalar(url, "ALTER TABLE messages SET (fillfactor = 90)")  # kept by each partition
    await upgrade(url)

    assert (
        await _scalar(url, "SELECT relkind::text FROM pg_class WHERE relname = 'messages'") == "p"
    )
    assert await _scalar(url, "SELECT count(*) FROM messages") == HISTORY
    assert await _scalar(url, "SELECT count(*) FROM message_events") == events
    # Every old message is in the partition of its week, its events in theirs.
    misplaced = await _scalar(
        url,
        "SELECT count(*) FROM messages WHERE tableoid::regclass::text <> 'messages_l' ||"
        " to_char(date_trunc('week', time_in AT TIME ZONE 'UTC'), 'YYYYMMDD')",
    )
    assert misplaced == 0
    assert (
        await _scalar(
            url,
            "SELECT count(*) FROM message_events AS e JOIN messages AS m ON m.id = e.message_id"
            " WHERE replace(e.tableoid::regclass::text, 'message_events', '')"
            " <> replace(m.tableoid::regclass::text, 'messages', '')",
        )
        == 0
    )
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            names = [p.name for p in await partitions(session, "messages")]
            old = await MessageRepository(session).get(1, HISTORY // 2)
            by_reference = await MessageRepository(session).get_by_reference(1, "ref-7")
        assert len([n for n in names if "_l" in n]) == 5
        assert partition_name("messages", this_week.date()) in names
        assert names[-1] == "messages_default"
        assert old is not None and old.reference == f"ref-{HISTORY // 2}"
        assert by_reference is not None and by_reference.id == 7
        # A new message: a time-ordered id, in this week's partition.
        async with transaction(sessions) as session:
            [new_id] = await MessageRepository(session).insert_many([_row(old, "fresh")])
        assert await _where(sessions, new_id) == partition_name("messages", this_week.date())
        # An id of a week nobody made lands in the DEFAULT partition; making the week moves it.
        far = this_week.date() + timedelta(weeks=10)
        stray = week_bounds(far)[0] + 5
        async with transaction(sessions) as session:
            await session.execute(insert(Message), [{**_row(old, "stray"), "id": stray}])
        assert await _where(sessions, stray) == "messages_default"
        async with transaction(sessions) as session:
            await create_weeks(session, [far])
        assert await _where(sessions, stray) == partition_name("messages", far)
        storage = await _scalar(
            url,
            "SELECT array_agg(DISTINCT array_to_string(c.reloptions, ',')) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'messages'::regclass",
        )
        # 0017 gave each partition the old table's 90; 0016, after it, sets the HOT fillfactor
        # (50) on every partition, DEFAULT included, and a week made later copies DEFAULT's.
        assert storage == ["fillfactor=50"]

        # Pruning a day into this week, 14 days kept: the first three weeks ended 15 days ago
        # or earlier; their open messages (every tenth) stay, in the DEFAULT partition.
        report = await prune(sessions, this_week + timedelta(days=1), 14)
        assert len(report.partitions) == 3
        kept = report.as_json()["messages_kept_open"]
        assert kept == sum(d.rows // 10 for d in report.partitions)
        # Once they close, the next run deletes them from the DEFAULT partition.
        async with transaction(sessions) as session:
            await session.execute(
                text("UPDATE messages_default SET status = 'delivered' WHERE id < :new"),
                {"new": 2**32},
            )
        again = await prune(sessions, this_week + timedelta(days=1), 14)
        assert (again.partitions, again.deleted) == ([], kept)
    finally:
        await engine.dispose()

    # And back: plain tables again, nothing lost (the ids stay bigint).
    await downgrade(url, "0013_supplier_rate_buckets")
    assert (
        await _scalar(url, "SELECT relkind::text FROM pg_class WHERE relname = 'messages'") == "r"
    )
    remaining = await _scalar(url, "SELECT count(*) FROM messages")
    assert remaining == HISTORY + 2 - sum(d.rows for d in report.partitions)
    await upgrade(url)
    assert await _scalar(url, "SELECT count(*) FROM messages") == remaining


def _row(like: Message, reference: str) -> dict[str, Any]:
    skip: Callable[[str], bool] = lambda name: name in {"id", "reference", "task_id"}  # noqa: E731
    row = {c.name: getattr(like, c.key) for c in Message.__table__.columns if not skip(c.name)}
    return {**row, "reference": reference}
