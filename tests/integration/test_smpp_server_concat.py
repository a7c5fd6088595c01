"""Long messages into the SMPP server: parts answered one by one (durably), options from part
1, text decoded as a whole, a receipt for every part that asked, incomplete ones given up.

The server runs with its accept queue and no delivery worker; final statuses are applied as
a supplier's report would apply them, and the clock is moved rather than waited on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import build_world
from tidings.accounts.models import Client
from tidings.accounts.service import Credentials, issue_smpp_credentials
from tidings.clock import FrozenClock
from tidings.connectors.smpp.pdu import (
    BindTransceiver,
    CommandStatus,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    decode,
    encode,
)
from tidings.connectors.smpp.receipts import MessageState, receipt_from_pdu
from tidings.connectors.smpp.smpptime import format_relative
from tidings.connectors.smpp.text import _pack_after
from tidings.connectors.smpp.tlv import Tag, int_value
from tidings.db.engine import transaction
from tidings.messages.acceptance import Limits
from tidings.messages.catalog import CatalogCache
from tidings.messages.changes import StatusChange
from tidings.messages.encoding import decode_gsm7, encode_gsm7, encode_ucs2
from tidings.messages.models import Message
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.messages.writer import AcceptQueue
from tidings.smpp_server.models import SmppInboundPart
from tidings.smpp_server.server import ServerOptions, SmppServer

NOW = datetime.fromisoformat("2026-12-04T10:00:00+00:00")
TIMEOUT = 120.0


@dataclass
class Esme:
    """Our codec as the client: answers kept by sequence number, receipts answered."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sequence: int = 0
    answers: dict[int, Pdu] = field(default_factory=dict)
    receipts: list[DeliverSm] = field(default_factory=list)

    def send(self, pdu: Pdu) -> int:
        self.sequence += 1
        pdu.sequence_number = self.sequence
        self.writer.write(encode(pdu))
        return self.sequence

    async def _read_one(self) -> None:
        head = await asyncio.wait_for(self.reader.readexactly(4), 5)
        body = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head, "big") - 4), 5)
        pdu = decode(head + body)
        if isinstance(pdu, DeliverSm):
            self.receipts.append(pdu)
            self.writer.write(encode(DeliverSmResp(pdu.sequence_number)))
        else:
            self.answers[pdu.sequence_number] = pdu

    async def answer(self, sequence: int) -> Pdu:
        while sequence not in self.answers:
            await self._read_one()
        return self.answers[sequence]

    async def call(self, pdu: Pdu) -> Pdu:
        return await self.answer(self.send(pdu))

    async def wait_receipts(self, count: int) -> list[DeliverSm]:
        for _ in range(200):
            if len(self.receipts) >= count:
                break
            await self._read_one()
        return self.receipts

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Running:
    sessions: async_sessionmaker[AsyncSession]
    clock: FrozenClock
    client_id: int
    credentials: Credentials
    server: SmppServer | None = None
    accepts: AcceptQueue | None = None

    async def start(self) -> SmppServer:
        self.accepts = AcceptQueue(self.sessions, self.clock)
        self.accepts.start()
        options = ServerOptions(port=0, receipt_poll=0.05, concat_timeout=TIMEOUT)
        catalog = CatalogCache(self.sessions, ttl=0)
        self.server = SmppServer(
            self.sessions, self.clock, catalog, self.accepts, Limits(), options
        )
        await self.server.start()
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.accepts is not None:
            await self.accepts.stop()
        self.server = self.accepts = None

    async def bound(self) -> Esme:
        assert self.server is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        esme = Esme(reader, writer)
        bind = BindTransceiver(system_id=self.credentials.login, password=self.credentials.password)
        assert (await esme.call(bind)).command_status == CommandStatus.ESME_ROK
        return esme

    async def messages(self) -> list[Message]:
        async with transaction(self.sessions) as session:
            return list((await session.execute(select(Message).order_by(Message.id))).scalars())

    async def finish(self, message_id: int, status: Status) -> None:
        async with transaction(self.sessions) as session:
            await apply_changes(
                session, self.clock, [StatusChange(message_id, status, self.clock.now())]
            )


@pytest.fixture
async def running(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Running]:
    clock = FrozenClock(NOW)
    world = await build_world(sessions, clock, balance=Decimal("10"))
    async with transaction(sessions) as session:
        credentials = await issue_smpp_credentials(session, world.client_id)
    run = Running(sessions, clock, world.client_id, credentials)
    await run.start()
    try:
        yield run
    finally:
        await run.stop()


def udh8(reference: int, total: int, seqnum: int) -> bytes:
    return bytes((5, 0x00, 3, reference, total, seqnum))


def udh16(reference: int, total: int, seqnum: int) -> bytes:
    return bytes((6, 0x08, 4, reference >> 8, reference & 0xFF, total, seqnum))


def sar(reference: int, total: int, seqnum: int) -> dict[int, bytes]:
    return {
        Tag.SAR_MSG_REF_NUM: int_value(reference, 2),
        Tag.SAR_TOTAL_SEGMENTS: int_value(total, 1),
        Tag.SAR_SEGMENT_SEQNUM: int_value(seqnum, 1),
    }


def submit(short_message: bytes = b"", **fields: object) -> SubmitSm:
    pdu = SubmitSm(source_addr="Acme", destination_addr="380971234567", short_message=short_message)
    for key, value in fields.items():
        setattr(pdu, key, value)
    return pdu


def receipt_ids(receipts: list[DeliverSm]) -> list[tuple[str, MessageState | None]]:
    found = []
    for pdu in receipts:
        receipt = receipt_from_pdu(pdu)
        assert receipt is not None
        found.append((receipt.message_id, receipt.state))
    return found


async def test_udh_parts_take_part_1s_options_and_each_asking_part_gets_a_receipt(
    running: Running,
) -> None:
    esme = await running.bound()
    text = "x" * 152 + "{" + "y" * 151 + "€ end"  # the escape of { and € cut by the split
    septets = encode_gsm7(text)
    pieces = [septets[:153], septets[153:306], septets[306:]]
    assert pieces[0].endswith(b"\x1b") and pieces[1].endswith(b"\x1b")
    one_hour = format_relative(timedelta(hours=1))
    two_days = format_relative(timedelta(days=2))
    options = [  # (registered_delivery, validity) of parts 1, 2, 3: Kannel asks on part 1
        (1, one_hour),
        (0, two_days),
        (1, two_days),
    ]
    sequences = {}
    for seqnum in (2, 3, 1):  # any order
        rd, validity = options[seqnum - 1]
        pdu = submit(
            udh8(77, 3, seqnum) + pieces[seqnum - 1],
            esm_class=0x40,
            registered_delivery=rd,
            validity_period=validity,
        )
        sequences[seqnum] = esme.send(pdu)
    answers = {n: await esme.answer(s) for n, s in sequences.items()}
    assert {a.command_status for a in answers.values()} == {0}
    reply = {n: a.message_id for n, a in answers.items()}  # type: ignore[attr-defined]
    assert len(set(reply.values())) == 3  # each part its own id
    [message] = await running.messages()
    assert message.body == text and message.parts == 3
    assert message.expires_at == NOW + timedelta(hours=1)  # part 1's validity
    await running.finish(message.id, Status.DELIVERED)
    receipts = await esme.wait_receipts(2)
    assert sorted(receipt_ids(receipts)) == sorted(
        [(reply[1], MessageState.DELIVERED), (reply[3], MessageState.DELIVERED)]
    )
    assert all(b"text:xxxxxxxxxxxxxxxxxxxx" in r.short_message for r in receipts)
    # query_sm by a part's own id gives the message's state.
    query = await esme.call(QuerySm(message_id=reply[2]))
    assert isinstance(query, QuerySmResp) and query.message_state == MessageState.DELIVERED
    await esme.close()


async def test_udh16_ucs2_emoji_cut_between_parts_receipt_on_every_part(
    running: Running,
) -> None:
    esme = await running.bound()
    text = "😀 Привіт" + "ї" * 57 + "🇺🇦 кінець"  # the flag's first surrogate pair is cut
    units = encode_ucs2(text)
    cut = 67 * 2
    assert 0xD8 <= units[cut - 2] <= 0xDB  # part 1 ends with a high surrogate
    pieces = [units[:cut], units[cut:]]
    sent = [
        esme.send(
            submit(udh16(0x1234, 2, n) + p, esm_class=0x40, data_coding=8, registered_delivery=1)
        )
        for n, p in enumerate(pieces, start=1)
    ]
    reply = [(await esme.answer(s)).message_id for s in sent]  # type: ignore[attr-defined]
    [message] = await running.messages()
    assert message.body == text
    await running.finish(message.id, Status.UNDELIVERED)
    receipts = await esme.wait_receipts(2)
    assert sorted(receipt_ids(receipts)) == sorted((r, MessageState.UNDELIVERABLE) for r in reply)
    [first, _] = receipts
    assert first.data_coding == 8  # the text: field holds the emoji, so the receipt is UCS-2
    data = first.tlvs.get(Tag.MESSAGE_PAYLOAD) or first.short_message  # too long for the latter
    assert "text:😀 Привіт" in data.decode("utf-16-be")
    await esme.close()


async def test_sar_message_payload_and_packed_gsm(running: Running) -> None:
    async with transaction(running.sessions) as session:
        await session.execute(
            update(Client).where(Client.id == running.client_id).values(smpp_charset="gsm7-packed")
        )
    esme = await running.bound()
    text = "a" * 10 + "[" + "b" * 5
    septets = encode_gsm7(text)
    pieces = [septets[:11], septets[11:]]  # cut between ESC and <
    for n, piece in enumerate(pieces, start=1):
        pdu = submit(_pack_after(b"", piece), tlvs=sar(900, 2, n))
        assert (await esme.call(pdu)).command_status == 0
    # message_payload parts (data_sm), packed with a UDH and fill bits.
    for n, piece in enumerate(pieces, start=1):
        udh = udh8(5, 2, n)
        data = DataSm(
            source_addr="Acme",
            destination_addr="380971234567",
            esm_class=0x40,
            tlvs={Tag.MESSAGE_PAYLOAD: _pack_after(udh, piece)},
        )
        assert (await esme.call(data)).command_status == 0
    assert [m.body for m in await running.messages()] == [text, text]
    await esme.close()


async def test_incomplete_message_is_answered_then_given_up_with_undeliv(
    running: Running,
) -> None:
    esme = await running.bound()
    first = await esme.call(
        submit(udh8(3, 2, 1) + b"first half", esm_class=0x40, registered_delivery=1)
    )
    quiet = await esme.call(submit(udh8(4, 2, 1) + b"no receipt", esm_class=0x40))
    assert first.command_status == quiet.command_status == 0
    query = await esme.call(QuerySm(message_id=first.message_id))  # type: ignore[attr-defined]
    assert isinstance(query, QuerySmResp) and query.message_state == MessageState.ENROUTE
    running.clock.advance(TIMEOUT + 1)
    [receipt] = await esme.wait_receipts(1)
    assert receipt_ids([receipt]) == [(first.message_id, MessageState.UNDELIVERABLE)]  # type: ignore[attr-defined]
    assert b"stat:UNDELIV" in receipt.short_message and b"text:first half" in receipt.short_message
    assert await running.messages() == []  # nothing was accepted, nothing charged
    query = await esme.call(QuerySm(message_id=first.message_id))  # type: ignore[attr-defined]
    assert isinstance(query, QuerySmResp) and query.message_state == MessageState.UNDELIVERABLE
    # The second part, late: a new message that waits again (and is given up again).
    late = await esme.call(submit(udh8(3, 2, 2) + b"second", esm_class=0x40))
    assert late.command_status == 0
    assert await running.messages() == []
    await esme.close()


async def test_answered_parts_survive_a_restart(running: Running) -> None:
    esme = await running.bound()
    first = await esme.call(
        submit(udh8(8, 2, 1) + b"before the restart, ", esm_class=0x40, registered_delivery=1)
    )
    assert first.command_status == 0
    await esme.close()
    # Whatever ends the process after the answer, the part is a committed row: a new
    # server on the same database picks it up.
    async with transaction(running.sessions) as session:
        [row] = (await session.execute(select(SmppInboundPart))).scalars()
    assert row.reply_id == first.message_id and row.pdu is not None  # type: ignore[attr-defined]
    await running.stop()
    await running.start()
    esme = await running.bound()
    second = await esme.call(submit(udh8(8, 2, 2) + b"after it", esm_class=0x40))
    assert second.command_status == 0
    [message] = await running.messages()
    assert message.body == "before the restart, after it"
    await running.finish(message.id, Status.DELIVERED)
    [receipt] = await esme.wait_receipts(1)
    assert receipt_ids([receipt]) == [(first.message_id, MessageState.DELIVERED)]  # type: ignore[attr-defined]
    await esme.close()


async def test_a_part_sent_again_gets_the_same_answer(running: Running) -> None:
    esme = await running.bound()
    pdu = udh8(11, 2, 1) + b"once"
    first = await esme.call(submit(pdu, esm_class=0x40))
    again = await esme.call(submit(pdu, esm_class=0x40))
    other = await esme.call(submit(udh8(11, 2, 1) + b"different", esm_class=0x40))
    assert (first.command_status, again.command_status) == (0, 0)
    assert first.message_id == again.message_id  # type: ignore[attr-defined]
    assert other.command_status == CommandStatus.ESME_RINVOPTPARAMVAL
    await esme.close()


async def test_bad_text_is_refused_and_refusal_of_a_whole_fails_its_parts(
    running: Running,
) -> None:
    esme = await running.bound()
    for pdu in [
        submit(b"nul\x00", data_coding=1),
        submit(b"\x01\x02\x03", data_coding=4),
        submit(udh8(1, 2, 1) + b"bell\x07", esm_class=0x40, data_coding=3),
        submit(b"\xff high", data_coding=1),
    ]:
        assert (await esme.call(pdu)).command_status == CommandStatus.ESME_RINVDCS
    ia5 = await esme.call(submit(b"plain IA5 text", data_coding=1))
    assert ia5.command_status == 0
    # A whole that cannot be taken: the last part gets the refusal, the earlier one (which
    # was answered) a REJECTD receipt.
    units = encode_ucs2("a😀")
    first = await esme.call(
        submit(udh8(2, 2, 1) + units[:4], esm_class=0x40, data_coding=8, registered_delivery=1)
    )
    last = await esme.call(submit(udh8(2, 2, 2) + units[:2], esm_class=0x40, data_coding=8))
    assert first.command_status == 0 and last.command_status == CommandStatus.ESME_RINVDCS
    [receipt] = await esme.wait_receipts(1)
    assert receipt_ids([receipt]) == [(first.message_id, MessageState.REJECTED)]  # type: ignore[attr-defined]
    assert [m.body for m in await running.messages()] == ["plain IA5 text"]
    assert decode_gsm7(b"ok") == "ok"
    await esme.close()
