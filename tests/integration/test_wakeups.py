"""Wake-ups: a commit that creates work wakes the loops waiting for it, in this process and in
the others of the same database (PostgreSQL NOTIFY; Unix datagrams between SQLite siblings)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.db.engine import create_sessionmaker, transaction
from tidings.wakeups import (
    WEBHOOKS,
    Wakeups,
    dispatch_channel,
    sleep_until_woken,
    wake_after_commit,
    wake_after_commit_in,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def hubs(database_url: str) -> AsyncIterator[tuple[Wakeups, Wakeups]]:
    """Two hubs of one database, as two processes of one gateway have."""
    first = Wakeups.for_database(database_url)
    second = Wakeups.for_database(database_url)
    await first.start()
    await second.start()
    # PostgreSQL: the listeners connect in the background (and wake everything once they
    # are up, for work made while they were away); let that pass.
    await asyncio.sleep(0.5)
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()


async def woken(event: asyncio.Event, within: float = 5.0) -> bool:
    try:
        await asyncio.wait_for(event.wait(), within)
    except TimeoutError:
        return False
    return True


async def test_a_commit_wakes_its_channel_here_and_in_the_other_process(
    engine: AsyncEngine, hubs: tuple[Wakeups, Wakeups]
) -> None:
    here, there = hubs
    sessions = create_sessionmaker(engine, here)
    local = here.subscribe(WEBHOOKS)
    remote = there.subscribe(WEBHOOKS)
    other_channel = there.subscribe(dispatch_channel(1))

    async with transaction(sessions) as session:
        await session.execute(text("SELECT 1"))
        wake_after_commit(session, WEBHOOKS)
        assert not local.is_set()  # not before the commit: the work is not visible yet
    assert local.is_set()  # this process: at once
    assert await woken(remote)  # the other: by NOTIFY or datagram
    await asyncio.sleep(0.2)
    assert not other_channel.is_set()


async def test_a_rolled_back_transaction_wakes_nobody(
    engine: AsyncEngine, hubs: tuple[Wakeups, Wakeups]
) -> None:
    here, there = hubs
    sessions = create_sessionmaker(engine, here)
    local = here.subscribe(WEBHOOKS)
    remote = there.subscribe(WEBHOOKS)
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            await session.execute(text("SELECT 1"))
            wake_after_commit(session, WEBHOOKS)
            raise RuntimeError("abandoned")
    await asyncio.sleep(0.3)
    assert not local.is_set() and not remote.is_set()


async def test_a_suppliers_channel_wakes_only_its_lane(
    engine: AsyncEngine, hubs: tuple[Wakeups, Wakeups]
) -> None:
    here, _ = hubs
    sessions = create_sessionmaker(engine, here)
    first, second = here.subscribe(dispatch_channel(1)), here.subscribe(dispatch_channel(2))
    async with transaction(sessions) as session:
        wake_after_commit(session, dispatch_channel(1))
        await session.execute(text("SELECT 1"))
    assert first.is_set() and not second.is_set()


async def test_work_due_later_wakes_when_it_comes_due(
    engine: AsyncEngine, hubs: tuple[Wakeups, Wakeups]
) -> None:
    here, _ = hubs
    sessions = create_sessionmaker(engine, here)
    waiting = here.subscribe(dispatch_channel(7))
    started = time.monotonic()
    async with transaction(sessions) as session:
        await session.execute(text("SELECT 1"))
        wake_after_commit_in(session, dispatch_channel(7), 0.3)
        wake_after_commit_in(session, dispatch_channel(7), 0.2)  # the soonest counts
    assert not waiting.is_set()
    assert await woken(waiting, 3.0)
    assert 0.15 <= time.monotonic() - started < 2.0


async def test_without_a_hub_loops_just_poll(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with transaction(sessions) as session:
        wake_after_commit(session, WEBHOOKS)  # nothing to tell: harmless
        await session.execute(text("SELECT 1"))
    event = asyncio.Event()
    started = time.monotonic()
    await sleep_until_woken(event, 0.05)
    assert time.monotonic() - started >= 0.04


async def test_a_sibling_that_died_is_forgotten(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("Unix sockets are the SQLite transport")
    alive, dead = Wakeups.for_database(database_url), Wakeups.for_database(database_url)
    await alive.start()
    await dead.start()
    transport = dead._transport
    assert transport is not None
    sock = transport._socket  # type: ignore[attr-defined]
    path = transport._path  # type: ignore[attr-defined]
    # Die without cleaning up: the socket file stays, nobody reads it.
    sock.close()
    transport._socket = None  # type: ignore[attr-defined]
    try:
        alive.notify([WEBHOOKS])
        await asyncio.sleep(0.05)
        assert not path.exists()
    finally:
        await alive.stop()
        await dead.stop()
