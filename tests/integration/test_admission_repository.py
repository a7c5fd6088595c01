"""An accept round's reads (messages/admission_repository.py): one statement on PostgreSQL,
the repositories' own elsewhere; the same answers on both."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import build_world
from tidings.accounts.service import Caller, KeyKind
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.admission_repository import AdmissionRepository
from tidings.messages.storing import accept_sms
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
