"""submit_sm's registered_delivery, validity_period and schedule_delivery_time; cancel_sm.

The server runs with its accept queue and no delivery worker, so messages stay where the
test puts them; final statuses are applied as a supplier's report would apply them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.smpp_server_support import smpp_server
from tidings.accounts.models import Client
from tidings.accounts.service import Credentials
from tidings.clock import FrozenClock
from tidings.connectors.smpp.pdu import (
    BindTransceiver,
    CancelSm,
    CommandStatus,
    DeliverSm,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    decode,
    encode,
)
from tidings.connectors.smpp.receipts import MessageState
from tidings.connectors.smpp.smpptime import format_absolute, format_relative
from tidings.db.engine import transaction
from tidings.delivery.models import DispatchJob
from tidings.messages.changes import StatusChange
from tidings.messages.models import Message
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.smpp_server.models import SmppReceipt
from tidings.smpp_server.server import ServerOptions, SmppServer
from tidings.smpp_server.submits import MAX_VALIDITY

NOW = datetime.fromisoformat("2026-11-24T10:00:00+00:00")


@dataclass
class Client_:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sequence: int = 0

    async def call(self, pdu: Pdu) -> Pdu:
        self.sequence += 1
        pdu.sequence_number = self.sequence
        self.writer.write(encode(pdu))
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(4), 5)
            body = await asyncio.wait_for(
                self.reader.readexactly(int.from_bytes(head, "big") - 4), 5
            )
            answer = decode(head + body)
            if not isinstance(answer, DeliverSm):  # receipts are not what this test reads
                return answer

    async def submit(self, **fields: object) -> SubmitSmResp:
        pdu = SubmitSm(source_addr="Acme", destination_addr="380971234567", short_message=b"hi")
        for key, value in fields.items():
            setattr(pdu, key, value)
        answer = await self.call(pdu)
        assert isinstance(answer, SubmitSmResp)
        return answer


@dataclass
class Running:
    server: SmppServer
    client_id: int
    credentials: Credentials
    sessions: async_sessionmaker[AsyncSession]
    clock: FrozenClock

    async def bound(self) -> Client_:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        client = Client_(reader, writer)
        bind = BindTransceiver(system_id=self.credentials.login, password=self.credentials.password)
        assert (await client.call(bind)).command_status == CommandStatus.ESME_ROK
        return client

    async def message(self, message_id: str) -> Message:
        async with transaction(self.sessions) as session:
            message = await session.get(Message, int(message_id))
        assert message is not None
        return message


@pytest.fixture
async def running(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Running]:
    clock = FrozenClock(NOW)
    async with smpp_server(sessions, clock, ServerOptions(port=0, receipt_poll=0.05)) as served:
        yield Running(served.server, served.client_id, served.credentials, sessions, clock)


async def test_validity_period_absolute_and_relative(running: Running) -> None:
    client = await running.bound()
    in_two_hours = NOW + timedelta(hours=2)
    # An absolute time written in UTC+3 (12 quarter hours): the same instant.
    absolute = await client.submit(validity_period=format_absolute(in_two_hours, 12))
    relative = await client.submit(validity_period="000000013000000R")  # 1 h 30 min
    long = await client.submit(validity_period="000100000000000R")  # a month: cut to 7 days
    default = await client.submit()
    assert {a.command_status for a in (absolute, relative, long, default)} == {0}
    assert (await running.message(absolute.message_id)).expires_at == in_two_hours
    expected = NOW + timedelta(hours=1, minutes=30)
    assert (await running.message(relative.message_id)).expires_at == expected
    assert (await running.message(long.message_id)).expires_at == NOW + MAX_VALIDITY
    assert (await running.message(default.message_id)).expires_at == NOW + timedelta(hours=72)
    client.writer.close()


async def test_schedule_delivery_time_makes_a_scheduled_message(running: Running) -> None:
    client = await running.bound()
    at = NOW + timedelta(hours=5)
    scheduled = await client.submit(
        schedule_delivery_time=format_relative(timedelta(hours=5)),
        validity_period=format_relative(timedelta(hours=6)),
    )
    past = await client.submit(schedule_delivery_time=format_absolute(NOW - timedelta(hours=1)))
    message = await running.message(scheduled.message_id)
    assert (message.status, message.send_at, message.expires_at) == (
        "scheduled",
        at,
        NOW + timedelta(hours=6),
    )
    async with transaction(running.sessions) as session:
        job = await session.get(DispatchJob, message.id)
    assert job is not None and job.due_at == at
    now_message = await running.message(past.message_id)  # a time in the past: now
    assert (now_message.status, now_message.send_at) == ("queued", None)
    client.writer.close()


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"validity_period": "261124"}, CommandStatus.ESME_RINVEXPIRY),
        ({"validity_period": "261324100000000+"}, CommandStatus.ESME_RINVEXPIRY),  # month 13
        ({"validity_period": "261124100000049+"}, CommandStatus.ESME_RINVEXPIRY),  # 12 h 15
        ({"validity_period": "261124090000000+"}, CommandStatus.ESME_RINVEXPIRY),  # past
        ({"schedule_delivery_time": "26112410000000X"}, CommandStatus.ESME_RINVSCHED),
        (
            {"schedule_delivery_time": "000000050000000R", "validity_period": "000000020000000R"},
            CommandStatus.ESME_RINVEXPIRY,  # ends before it may start
        ),
    ],
)
async def test_bad_times_are_refused_and_not_charged(
    running: Running, fields: dict[str, str], status: int
) -> None:
    client = await running.bound()
    answer = await client.submit(**fields)
    assert answer.command_status == status
    async with transaction(running.sessions) as session:
        assert (await session.execute(select(Message.id))).first() is None
    assert await _balance(running) == Decimal("10")
    client.writer.close()


async def _balance(running: Running) -> Decimal:
    async with transaction(running.sessions) as session:
        client = await session.get(Client, running.client_id)
    assert client is not None
    return client.balance


async def _finish(running: Running, message_id: str, status: Status) -> None:
    async with transaction(running.sessions) as session:
        await apply_changes(
            session, running.clock, [StatusChange(int(message_id), status, running.clock.now())]
        )


async def _receipts(running: Running) -> list[tuple[int, str]]:
    async with transaction(running.sessions) as session:
        rows = await session.execute(
            select(SmppReceipt.message_id, SmppReceipt.status).order_by(SmppReceipt.id)
        )
        return [(mid, status) for mid, status in rows.tuples()]


async def test_registered_delivery_decides_which_receipts_are_owed(running: Running) -> None:
    client = await running.bound()
    none = await client.submit(registered_delivery=0)
    final = await client.submit(registered_delivery=1)
    failure_ok = await client.submit(registered_delivery=2)
    failure_bad = await client.submit(registered_delivery=2)
    success_only = await client.submit(registered_delivery=0x13)  # SMPP 5.0's 3, + other bits
    success_failed = await client.submit(registered_delivery=3)
    for answer, status in [
        (none, Status.DELIVERED),
        (final, Status.UNDELIVERED),
        (failure_ok, Status.DELIVERED),
        (failure_bad, Status.EXPIRED),
        (success_only, Status.DELIVERED),
        (success_failed, Status.REJECTED),
    ]:
        await _finish(running, answer.message_id, status)
    assert await _receipts(running) == [
        (int(final.message_id), "undelivered"),
        (int(failure_bad.message_id), "expired"),
        (int(success_only.message_id), "delivered"),
    ]
    client.writer.close()


async def test_cancel_sm_of_an_unsent_message(running: Running) -> None:
    client = await running.bound()
    scheduled = await client.submit(schedule_delivery_time="000000050000000R")
    charged = await _balance(running)
    answer = await client.call(CancelSm(message_id=scheduled.message_id))
    assert answer.command_status == CommandStatus.ESME_ROK
    message = await running.message(scheduled.message_id)
    assert (message.status, message.status_detail) == ("rejected", "cancelled by cancel_sm")
    async with transaction(running.sessions) as session:
        assert await session.get(DispatchJob, message.id) is None
    assert await _balance(running) == charged + message.price
    query = await client.call(QuerySm(message_id=scheduled.message_id))
    assert isinstance(query, QuerySmResp) and query.message_state == MessageState.REJECTED
    again = await client.call(CancelSm(message_id=scheduled.message_id))
    assert again.command_status == CommandStatus.ESME_RCANCELFAIL
    unknown = await client.call(CancelSm(message_id="999999"))
    assert unknown.command_status == CommandStatus.ESME_RCANCELFAIL
    client.writer.close()


async def test_cancel_sm_refused_once_sent_or_being_sent(running: Running) -> None:
    client = await running.bound()
    sent = await client.submit()
    await _finish(running, sent.message_id, Status.SENT)
    leased = await client.submit()
    async with transaction(running.sessions) as session:
        job = await session.get(Message, int(leased.message_id))
        assert job is not None and job.due_at is not None  # its dispatch job: columns of it
        job.locked_until = NOW + timedelta(seconds=30)  # a worker is handing it over
    for answer in (sent, leased):
        cancel = await client.call(CancelSm(message_id=answer.message_id))
        assert cancel.command_status == CommandStatus.ESME_RCANCELFAIL
    assert (await running.message(leased.message_id)).status == "queued"
    client.writer.close()
