"""An accept round's reads and write (messages/admission_repository.py): one statement each
on PostgreSQL, the repositories' own elsewhere; the same answers on both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import build_world
from tidings.accounts.models import Client
from tidings.accounts.service import Caller, KeyKind
from tidings.billing.models import LedgerEntry
from tidings.clock import FrozenClock
from tidings.db.engine import one_statement, transaction
from tidings.errors import InsufficientFunds
from tidings.messages.acceptance import (
    Acceptance,
    Limits,
    PreparedSms,
    SmsItem,
    SmsRequest,
    prepare_sms,
)
from tidings.messages.admission_repository import AdmissionRepository, UncoveredRound
from tidings.messages.catalog import load_catalog
from tidings.messages.models import Message, Task
from tidings.messages.storing import accept_sms
from tidings.messages.writer import AcceptQueue
from tidings.optouts.repository import OptOutRepository


async def test_round_facts_answer_only_what_was_asked(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock, balance=Decimal("10"))
    other = await build_world(sessions, clock, balance=Decimal("10"), name="other")
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with transaction(sessions) as session:
        await OptOutRepository(session).add(
            world.client_id, ["380975000001"], source="api", at=clock.now()
        )
        await OptOutRepository(session).add(
            other.client_id, ["380975000002"], source="api", at=clock.now()
        )
        request = SmsRequest("phone", [SmsItem("380975000009", "used-ref", "t", "hi")])
        await accept_sms(session, clock, caller, request, Limits())

    async with transaction(sessions) as session:
        facts = await AdmissionRepository(session).round_facts(
            # 380975000002 is on the other client's list, not this one's: not opted out here.
            {world.client_id: ["380975000001", "380975000002"], other.client_id: []},
            {world.client_id: ["used-ref", "new-ref"], other.client_id: ["used-ref"]},
            3,
        )
        dialect = session.get_bind().dialect.name

    assert facts.opted_out == {(world.client_id, "380975000001")}
    assert dict(facts.used_references) == {world.client_id: {"used-ref"}}
    if dialect == "postgresql":
        assert len(facts.ids) == 3 and facts.ids == sorted(set(facts.ids))
    else:  # taken at the insert, under SQLite's write lock
        assert facts.ids == []


async def test_round_facts_of_nothing_ask_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await build_world(sessions, clock)
    async with transaction(sessions) as session:
        facts = await AdmissionRepository(session).round_facts({}, {}, 0)
    assert not facts.opted_out and not facts.used_references and facts.ids == []


async def test_a_round_with_a_client_short_of_money_stores_the_rest(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """On PostgreSQL the round's write is one statement that fails whole unless every
    client's balance covered its total; here one does not, so the queue writes the round
    again in a transaction, request by request (SQLite always does). Both end the same."""
    rich = await build_world(sessions, clock, balance=Decimal("10"))
    # 0.03 EUR: one 0.02 message fits, two do not.
    poor = await build_world(sessions, clock, balance=Decimal("0.03"), name="poor")
    async with sessions() as session:
        catalog = await load_catalog(session)

    def prepared(client_id: int, destination: str, *numbers: str) -> PreparedSms:
        caller = Caller(client_id=client_id, key_kind=KeyKind.LIVE, tariff=0)
        items = [SmsItem(n, f"ref-{n}", "t", "hi") for n in numbers]
        return prepare_sms(catalog, caller, SmsRequest(destination, items), Limits())

    round_ = [
        prepared(rich.client_id, "phones", "380975000001", "380975000002"),
        prepared(rich.client_id, "phone", "380975000003"),
        prepared(poor.client_id, "phone", "380975000004"),
        prepared(poor.client_id, "phone", "380975000005"),
    ]
    queue = AcceptQueue(sessions, clock)
    queue.start()
    try:  # submitted before the queue's task runs: one round
        results = await asyncio.gather(*(queue.submit(p) for p in round_), return_exceptions=True)
    finally:
        await queue.stop()

    batch, single, covered, uncovered = results
    assert isinstance(batch, Acceptance) and batch.task_id is not None
    assert isinstance(single, Acceptance) and single.task_id is None
    assert isinstance(covered, Acceptance)
    assert isinstance(uncovered, InsufficientFunds)
    async with sessions() as session:
        rich_client = await session.get(Client, rich.client_id)
        poor_client = await session.get(Client, poor.client_id)
        assert rich_client is not None and rich_client.balance == Decimal("9.94")
        assert poor_client is not None and poor_client.balance == Decimal("0.01")
        stored = (await session.execute(select(Message.id, Message.task_id, Message.msisdn))).all()
        expected_ids = [item.id for r in (batch, single, covered) for item in r.items]
        assert sorted(row.id for row in stored) == sorted(expected_ids)
        assert {row.msisdn: row.task_id for row in stored} == {
            "380975000001": batch.task_id,
            "380975000002": batch.task_id,
            "380975000003": None,
            "380975000004": None,
        }
        task = await session.get(Task, batch.task_id)
        assert task is not None and task.total_price == Decimal("0.04")
        charges = (
            await session.execute(
                select(LedgerEntry.client_id, LedgerEntry.amount, LedgerEntry.reference).where(
                    LedgerEntry.reason == "charge"
                )
            )
        ).all()
        assert sorted(charges) == sorted(
            [
                (rich.client_id, Decimal("-0.04"), f"task:{batch.task_id}"),
                (rich.client_id, Decimal("-0.02"), f"message:{single.items[0].id}"),
                (poor.client_id, Decimal("-0.02"), f"message:{covered.items[0].id}"),
            ]
        )


async def test_write_round_inserts_nothing_unless_every_client_paid(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one statement on PostgreSQL; SQLite writes with the repositories' own")
    rich = await build_world(sessions, clock, balance=Decimal("1"))
    poor = await build_world(sessions, clock, balance=Decimal("0.01"), name="poor")
    row = {
        "client_id": rich.client_id,
        "task_id": None,
        "channel": "sms",
        "source": "api",
        "msisdn": "380975000001",
        "country": "UA",
        "reference": None,
        "originator": "t",
        "body": "hi",
        "encoding": "gsm",
        "parts": 1,
        "tariff": 0,
        "price": Decimal("0.02"),
        "currency": "EUR",
        "status": "queued",
        "callback_url": None,
        "supplier_id": rich.supplier_id,
        "reply_to": None,
        "cost": None,
        "cost_currency": None,
        "send_at": None,
        "expires_at": clock.now(),
        "time_in": clock.now(),
        "due_at": clock.now(),
    }
    async with transaction(sessions) as session:
        [message_id] = (await AdmissionRepository(session).round_facts({}, {}, 1)).ids

    def write(session: AsyncSession, totals: dict[int, Decimal]) -> Awaitable[None]:
        return AdmissionRepository(session).write_round(
            totals,
            [],
            [],
            [row],
            [message_id],
            [(rich.client_id, Decimal("-0.02"), "charge", f"message:{message_id}")],
            clock.now(),
        )

    # The poor client's balance does not cover its total: the statement fails whole, the
    # rich client's debit with it, and nothing is inserted.
    with pytest.raises(UncoveredRound):
        async with one_statement(sessions) as session:
            await write(session, {rich.client_id: Decimal("0.02"), poor.client_id: Decimal("0.02")})
    async with sessions() as session:
        assert await session.scalar(select(Client.balance).where(Client.id == rich.client_id)) == (
            Decimal("1")
        )
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
        charges = select(func.count()).where(LedgerEntry.reason == "charge")
        assert await session.scalar(charges) == 0

    async with one_statement(sessions) as session:
        await write(session, {rich.client_id: Decimal("0.02")})
    async with sessions() as session:
        assert await session.scalar(select(Client.balance).where(Client.id == rich.client_id)) == (
            Decimal("0.98")
        )
        assert await session.scalar(select(Message.id)) == message_id
        assert await session.scalar(charges) == 1
