"""Concurrent create requests through the accept queue: each decided on its own."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import build_world
from tidings.accounts.models import Client
from tidings.accounts.service import Caller, KeyKind
from tidings.billing.models import LedgerEntry
from tidings.clock import FrozenClock
from tidings.errors import Conflict
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest, prepare_sms
from tidings.messages.catalog import load_catalog
from tidings.messages.models import Message
from tidings.messages.writer import AcceptQueue


async def test_rounds_decide_money_and_references_per_request(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    # 0.10 EUR: five 0.02 messages fit, the other five do not.
    world = await build_world(sessions, clock, balance=Decimal("0.10"))
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with sessions() as session:
        catalog = await load_catalog(session)

    def request(i: int, reference: str) -> SmsRequest:
        return SmsRequest("phone", [SmsItem(f"38097500{i:04d}", reference, "t", "hi")])

    prepared = [prepare_sms(catalog, caller, request(i, f"r{i}"), Limits()) for i in range(10)]
    # And two requests racing for the same reference.
    prepared += [prepare_sms(catalog, caller, request(90 + i, "same"), Limits()) for i in range(2)]
    queue = AcceptQueue(sessions, clock)
    queue.start()
    try:
        results = await asyncio.gather(*(queue.submit(p) for p in prepared), return_exceptions=True)
    finally:
        await queue.stop()
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 5
    # References are checked before money: the second "same" is a conflict whatever the
    # balance; the first passes that check and then finds the balance spent.
    assert [type(r).__name__ for r in results[5:]] == ["InsufficientFunds"] * 6 + ["Conflict"]
    async with sessions() as session:
        client = await session.get(Client, world.client_id)
        assert client is not None and client.balance == Decimal("0")
        assert await session.scalar(select(func.count()).select_from(Message)) == 5
        charges = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.reason == "charge")
        )
        assert charges == 5


async def test_a_reference_race_gives_one_winner(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock, balance=Decimal("10"))
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with sessions() as session:
        catalog = await load_catalog(session)
    same = [
        prepare_sms(
            catalog,
            caller,
            SmsRequest("phone", [SmsItem(f"38097500000{i}", "dup", "t", "x")]),
            Limits(),
        )
        for i in range(4)
    ]
    queue = AcceptQueue(sessions, clock)
    queue.start()
    try:
        results = await asyncio.gather(*(queue.submit(p) for p in same), return_exceptions=True)
    finally:
        await queue.stop()
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 3
    async with sessions() as session:
        client = await session.get(Client, world.client_id)
        assert client is not None and client.balance == Decimal("9.98")
