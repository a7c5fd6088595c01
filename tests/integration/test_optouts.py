"""Opt-outs on each database: the list, STOP/START from inbound texts, confirmation replies,
and acceptance refusing opted-out numbers one by one (not charged, the rest goes on)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.support import build_world
from tidings.accounts.models import Client
from tidings.accounts.service import Caller, KeyKind, create_client
from tidings.billing.models import LedgerEntry
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.errors import InvalidRequest, OptedOut
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest, prepare_sms
from tidings.messages.catalog import load_catalog
from tidings.messages.models import Message
from tidings.messages.storing import accept_sms
from tidings.messages.writer import AcceptQueue
from tidings.optouts.keywords import Keyword, KeywordSet
from tidings.optouts.repository import OptOutRepository
from tidings.optouts.service import (
    add_numbers,
    apply_inbound_keyword,
    count_numbers,
    import_numbers,
    list_numbers,
    remove_numbers,
    set_confirmations,
)

KEYWORDS = KeywordSet.default()
A, B, C = "380972000001", "380972000002", "380972000003"


async def _inbound(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client_id: int,
    msisdn: str,
    text: str,
) -> Any:
    async with transaction(sessions) as session:
        return await apply_inbound_keyword(
            session,
            client_id=client_id,
            msisdn=msisdn,
            text=text,
            keywords=KEYWORDS,
            now=clock.now(),
        )


async def test_stop_and_start_from_inbound_texts_with_confirmations(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    client = world.client_id
    # No confirmation configured: the outcome says what happened, and no reply.
    stop = await _inbound(sessions, clock, client, "+" + A, " Stop. ")
    assert (stop.action, stop.msisdn, stop.changed, stop.reply) == (
        Keyword.OPT_OUT,
        A,
        True,
        None,
    )
    async with transaction(sessions) as session:
        replies = await set_confirmations(
            session,
            client,
            optout="You will get no more messages. START to undo.",
            optin="Welcome back",
        )
    assert replies.optin == "Welcome back"
    again = await _inbound(sessions, clock, client, A, "СТОП")
    assert again.action is Keyword.OPT_OUT and not again.changed
    assert again.reply == "You will get no more messages. START to undo."
    assert await _inbound(sessions, clock, client, A, "stop sending me these") is None
    assert await _inbound(sessions, clock, client, "Alphanum", "STOP") is None  # no number
    async with sessions() as session:
        [entry] = await list_numbers(session, client)
    assert (entry.msisdn, entry.source, entry.keyword) == (A, "keyword", "Stop.")
    back = await _inbound(sessions, clock, client, A, "start")
    assert (back.action, back.changed, back.reply) == (Keyword.OPT_IN, True, "Welcome back")
    assert not (await _inbound(sessions, clock, client, A, "START")).changed
    async with transaction(sessions) as session:
        assert await count_numbers(session, client) == 0
        cleared = await set_confirmations(session, client, optout="", optin=None)
    assert (cleared.optout, cleared.optin) == (None, "Welcome back")


async def test_the_list_is_per_client_and_edits_are_idempotent(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with transaction(sessions) as session:
        other = (await create_client(session, clock, name="other")).client.id
        first = await add_numbers(
            session, world.client_id, ["+" + A, "00" + B], source="cli", now=clock.now()
        )
        second = await add_numbers(session, world.client_id, [A, C], source="api", now=clock.now())
        await add_numbers(session, other, [A], source="api", now=clock.now())
    assert (first.msisdns, first.changed) == ([A, B], [A, B])
    assert second.changed == [C]
    async with transaction(sessions) as session:
        gone = await remove_numbers(session, world.client_id, [B, "380972000009"])
        assert gone.changed == [B]
        assert [o.msisdn for o in await list_numbers(session, world.client_id)] == [A, C]
        assert [o.msisdn for o in await list_numbers(session, world.client_id, after=A)] == [C]
        assert await OptOutRepository(session).counts() == {world.client_id: 2, other: 1}
        with pytest.raises(InvalidRequest) as refused:
            await add_numbers(session, other, ["12"], source="api", now=clock.now())
    assert refused.value.reason == "bad_msisdn"


async def test_two_concurrent_stops_of_one_number_both_succeed(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    outcomes = await asyncio.gather(
        *(_inbound(sessions, clock, world.client_id, A, "STOP") for _ in range(2))
    )
    assert sorted(o.changed for o in outcomes) == [False, True]


async def test_import_from_csv_is_all_or_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    numbers = [f"38097300{i:04d}" for i in range(1500)]  # more than one INSERT's worth
    text = "name,msisdn\n" + "".join(f"n{i},+{n}\n" for i, n in enumerate(numbers)) + "\n"
    async with transaction(sessions) as session:
        change = await import_numbers(session, world.client_id, text, now=clock.now())
    assert len(change.msisdns) == 1500 and len(change.changed) == 1500
    with pytest.raises(InvalidRequest, match="line 3"):
        async with transaction(sessions) as session:
            await import_numbers(
                session, world.client_id, f"{A}\n{B}\nnot-a-number\n", now=clock.now()
            )
    async with sessions() as session:
        assert await count_numbers(session, world.client_id) == 1500  # A and B not added


async def _balance(sessions: async_sessionmaker[AsyncSession], client_id: int) -> Decimal:
    async with sessions() as session:
        client = await session.get(Client, client_id)
        assert client is not None
        return client.balance


async def test_a_batch_goes_on_without_its_opted_out_numbers_which_are_not_charged(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    await _inbound(sessions, clock, world.client_id, B, "STOP")
    items = [SmsItem(n, f"ref-{n[-1]}", "shop", "Sale!") for n in (A, B, C)]
    async with transaction(sessions) as session:
        accepted = await accept_sms(session, clock, caller, SmsRequest("phones", items), Limits())
    assert [i.reference for i in accepted.items] == ["ref-1", "ref-3"]
    assert accepted.total_price == Decimal("0.04")
    [refused] = accepted.refused
    assert (refused.index, refused.msisdn, refused.reference) == (1, B, "ref-2")
    assert isinstance(refused.error, OptedOut) and "phones[1]" in refused.error.message
    assert await _balance(sessions, world.client_id) == Decimal("9.96")
    async with sessions() as session:
        stored = (await session.execute(select(Message.msisdn).order_by(Message.id))).scalars()
        assert list(stored) == [A, C]
        charges = (
            await session.execute(select(LedgerEntry.amount).where(LedgerEntry.reason == "charge"))
        ).scalars()
        assert sum(charges, Decimal(0)) == Decimal("-0.04")
    # The refused reference was never used: it can go to another number.
    again = [SmsItem("380972000004", "ref-2", "shop", "Sale!")]
    async with transaction(sessions) as session:
        await accept_sms(session, clock, caller, SmsRequest("individual", again), Limits())


async def test_a_single_message_or_a_batch_left_empty_is_refused_whole(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with transaction(sessions) as session:
        await add_numbers(session, world.client_id, [A, B], source="cli", now=clock.now())
    for request in (
        SmsRequest("phone", [SmsItem(A, "x1", "shop", "hi")]),
        SmsRequest("phones", [SmsItem(A, "x2", "shop", "hi"), SmsItem(B, "x3", "shop", "hi")]),
    ):
        with pytest.raises(OptedOut):
            async with transaction(sessions) as session:
                await accept_sms(session, clock, caller, request, Limits())
    assert await _balance(sessions, world.client_id) == Decimal("10")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    # A test key never reads the list (nothing stored is consulted): priced as usual.
    test_caller = Caller(client_id=world.client_id, key_kind=KeyKind.TEST, tariff=0)
    async with sessions() as session:
        fake = await accept_sms(
            session,
            clock,
            test_caller,
            SmsRequest("phone", [SmsItem(A, "x4", "s", "hi")]),
            Limits(),
        )
    assert fake.items and not fake.refused


async def test_one_query_checks_a_whole_write_round_of_several_clients(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    first = await build_world(sessions, clock)
    second = await build_world(sessions, clock, name="beta")
    async with transaction(sessions) as session:
        await add_numbers(session, first.client_id, [A], source="cli", now=clock.now())
        await add_numbers(session, second.client_id, [C], source="cli", now=clock.now())
        catalog = await load_catalog(session)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    def batch(world_id: int, numbers: tuple[str, ...], tag: str) -> Any:
        caller = Caller(client_id=world_id, key_kind=KeyKind.LIVE, tariff=0)
        items = [SmsItem(n, f"{tag}{i}", "shop", "hi") for i, n in enumerate(numbers)]
        return prepare_sms(catalog, caller, SmsRequest("phones", items), Limits())

    prepared = [
        batch(first.client_id, (A, B, C), "a"),  # A opted out of the first client only
        batch(second.client_id, (A, B, C), "b"),  # C opted out of the second only
        batch(first.client_id, (B, C), "c"),
    ]
    queue = AcceptQueue(sessions, clock)
    queue.start()
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        results = await asyncio.gather(*(queue.submit(p) for p in prepared))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        await queue.stop()
    assert [[r.msisdn for r in result.refused] for result in results] == [[A], [C], []]
    assert [len(result.items) for result in results] == [2, 2, 2]
    checks = [s for s in statements if "FROM optouts" in s]
    # One look-up per write round however many requests and clients it carries (the queue
    # may split the three into rounds, never more than one look-up each).
    rounds = sum(1 for s in statements if "INSERT INTO messages" in s)
    assert len(checks) == rounds and 1 <= rounds <= 3
