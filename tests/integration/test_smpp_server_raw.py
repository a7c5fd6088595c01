"""The SMPP server PDU by PDU (our codec as the client): SAR, UCS-2, data_sm, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.smpp_server_support import smpp_server
from tidings.accounts.service import Credentials
from tidings.clock import SystemClock
from tidings.connectors.smpp.pdu import (
    HEADER,
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    CommandId,
    CommandStatus,
    DataSm,
    EnquireLink,
    Pdu,
    QuerySm,
    SubmitSm,
    Unbind,
    decode,
    encode,
)
from tidings.connectors.smpp.tlv import Tag, int_value
from tidings.db.engine import transaction
from tidings.messages.models import Message
from tidings.smpp_server.server import ServerOptions, SmppServer


@dataclass
class Raw:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sequence: int = 0

    def send(self, pdu: Pdu) -> int:
        self.sequence += 1
        pdu.sequence_number = self.sequence
        self.writer.write(encode(pdu))
        return self.sequence

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self) -> Pdu:
        head = await asyncio.wait_for(self.reader.readexactly(4), 5)
        rest = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head, "big") - 4), 5)
        return decode(head + rest)

    async def call(self, pdu: Pdu) -> Pdu:
        self.send(pdu)
        return await self.read()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Running:
    server: SmppServer
    credentials: Credentials
    sessions: async_sessionmaker[AsyncSession]

    async def connect(self) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        return Raw(reader, writer)

    async def bound(self) -> Raw:
        raw = await self.connect()
        resp = await raw.call(
            BindTransceiver(system_id=self.credentials.login, password=self.credentials.password)
        )
        assert resp.command_status == CommandStatus.ESME_ROK
        return raw


@pytest.fixture
async def running(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Running]:
    options = ServerOptions(port=0, concat_timeout=0.3, receipt_poll=0.05)
    async with smpp_server(sessions, SystemClock(), options) as served:
        yield Running(served.server, served.credentials, sessions)


async def _bodies(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, int]]:
    async with transaction(sessions) as session:
        rows = await session.execute(select(Message.body, Message.parts).order_by(Message.id))
        return [(body, parts) for body, parts in rows.all()]


def _sar(reference: int, total: int, seqnum: int) -> dict[int, bytes]:
    return {
        Tag.SAR_MSG_REF_NUM: int_value(reference, 2),
        Tag.SAR_TOTAL_SEGMENTS: int_value(total, 1),
        Tag.SAR_SEGMENT_SEQNUM: int_value(seqnum, 1),
    }


def _submit(text: bytes, **fields: object) -> SubmitSm:
    pdu = SubmitSm(source_addr="Acme", destination_addr="380971234567", short_message=text)
    for key, value in fields.items():
        setattr(pdu, key, value)
    return pdu


async def test_sar_parts_in_any_order_and_ucs2(running: Running) -> None:
    raw = await running.bound()
    first, second = "Привіт, " * 9, "світ! " * 3  # 72 + 18 UCS-2 characters
    raw.send(_submit(second.encode("utf-16-be"), data_coding=8, tlvs=_sar(513, 2, 2)))
    raw.send(_submit(first.encode("utf-16-be"), data_coding=8, tlvs=_sar(513, 2, 1)))
    answers = [await raw.read(), await raw.read()]
    assert {a.command_status for a in answers} == {0}
    assert {a.sequence_number for a in answers} == {2, 3}  # 1 was the bind
    assert len({a.message_id for a in answers}) == 2  # each part its own id
    assert await _bodies(running.sessions) == [(first + second, 2)]
    await raw.close()


async def test_udh16_latin1_and_data_sm(running: Running) -> None:
    raw = await running.bound()
    udh = bytes([6, 0x08, 4, 0x12, 0x34, 2, 1])
    raw.send(_submit(udh + "café ".encode("latin-1"), data_coding=3, esm_class=0x40))
    raw.send(_submit(bytes([6, 0x08, 4, 0x12, 0x34, 2, 2]) + b"ok", data_coding=3, esm_class=0x40))
    assert [(await raw.read()).command_status for _ in range(2)] == [0, 0]
    data_sm = DataSm(
        source_addr="Acme",
        destination_addr="380971234568",
        tlvs={Tag.MESSAGE_PAYLOAD: b"payload text"},
    )
    resp = await raw.call(data_sm)
    assert resp.command_id == CommandId.DATA_SM_RESP and resp.command_status == 0
    assert await _bodies(running.sessions) == [("café ok", 1), ("payload text", 1)]
    query = await raw.call(QuerySm(message_id=resp.message_id))
    assert query.command_status == 0 and query.message_state == 1  # en route
    cancel = await raw.call(CancelSm(message_id=resp.message_id))  # not sent yet: cancelled
    assert cancel.command_status == CommandStatus.ESME_ROK
    cancel = await raw.call(CancelSm(message_id=resp.message_id))  # final now
    assert cancel.command_status == CommandStatus.ESME_RCANCELFAIL
    await raw.close()


async def test_incomplete_long_message_times_out(running: Running) -> None:
    raw = await running.bound()
    raw.send(_submit(b"first half", tlvs=_sar(7, 2, 1), registered_delivery=1))
    resp = await raw.read()  # answered once stored
    assert resp.command_status == CommandStatus.ESME_ROK
    receipt = await raw.read()  # when concat_timeout (0.3 s) passes: given up
    assert receipt.command_id == CommandId.DELIVER_SM
    assert b"stat:UNDELIV" in receipt.short_message  # type: ignore[attr-defined]
    assert await _bodies(running.sessions) == []
    await raw.close()


async def test_protocol_errors(running: Running) -> None:
    raw = await running.connect()
    resp = await raw.call(_submit(b"before bind"))
    assert resp.command_status == CommandStatus.ESME_RINVBNDSTS
    assert (await raw.call(EnquireLink())).command_id == CommandId.ENQUIRE_LINK_RESP
    bind = BindTransmitter(
        system_id=running.credentials.login, password=running.credentials.password
    )
    assert (await raw.call(bind)).command_status == 0
    again = BindTransmitter(
        system_id=running.credentials.login, password=running.credentials.password
    )
    assert (await raw.call(again)).command_status == CommandStatus.ESME_RALYBND
    # An unknown command: generic_nack ESME_RINVCMDID; a body that does not parse: a nack too.
    raw.send_raw(HEADER.pack(16, 0x00000999, 0, 77))
    nack = await raw.read()
    assert (nack.command_id, nack.command_status, nack.sequence_number) == (
        CommandId.GENERIC_NACK,
        CommandStatus.ESME_RINVCMDID,
        77,
    )
    raw.send_raw(HEADER.pack(17, CommandId.SUBMIT_SM, 0, 78) + b"x")
    nack = await raw.read()
    assert nack.command_id == CommandId.GENERIC_NACK and nack.sequence_number == 78
    resp = await raw.call(_submit(b"no route", destination_addr="12025550123"))
    assert resp.command_status == CommandStatus.ESME_RINVDSTADR
    assert (await raw.call(Unbind())).command_id == CommandId.UNBIND_RESP
    await raw.close()


async def test_pdus_split_and_packed_in_writes(running: Running) -> None:
    # The server reads whatever the socket has and splits it into PDUs itself: a PDU cut
    # over several writes and several PDUs in one write must both be read as sent.
    raw = await running.bound()
    first = encode(_submit(b"cut in three", sequence_number=1))
    raw.send_raw(first[:3])
    await raw.writer.drain()
    await asyncio.sleep(0.05)
    raw.send_raw(first[3:20])
    await raw.writer.drain()
    await asyncio.sleep(0.05)
    raw.send_raw(first[20:])
    resp = await raw.read()
    assert (resp.command_id, resp.command_status, resp.sequence_number) == (
        CommandId.SUBMIT_SM_RESP,
        CommandStatus.ESME_ROK,
        1,
    )
    packed = b"".join(
        encode(_submit(f"packed {n}".encode(), sequence_number=n)) for n in range(2, 6)
    ) + encode(EnquireLink(sequence_number=6))
    raw.send_raw(packed)
    answers = [await raw.read() for _ in range(5)]
    assert sorted(a.sequence_number for a in answers) == [2, 3, 4, 5, 6]
    assert all(a.command_status == CommandStatus.ESME_ROK for a in answers)
    bodies = [body for body, _ in await _bodies(running.sessions)]
    assert bodies[0] == "cut in three"
    assert sorted(bodies[1:]) == ["packed 2", "packed 3", "packed 4", "packed 5"]
    assert (await raw.call(Unbind())).command_id == CommandId.UNBIND_RESP
    await raw.close()
