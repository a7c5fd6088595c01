"""The SMPP server against a third-party ESME (smpplib, blocking, driven from a thread)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.e2e.gateway import free_port
from tests.smpp_esme import Esme
from tests.support import World, api_client, build_world
from tidings.accounts.models import Client
from tidings.accounts.service import Credentials, issue_smpp_credentials
from tidings.clock import SystemClock
from tidings.db.engine import transaction
from tidings.messages.models import Message
from tidings.smpp_server.models import SmppReceipt

ESME_RINVPASWD = 0x0E
ESME_RBINDFAIL = 0x0D
ESME_RTHROTTLED = 0x58
ESME_RSUBMITFAIL = 0x45


@dataclass
class Setup:
    world: World
    credentials: Credentials
    port: int
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def setup(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Setup]:
    clock = SystemClock()
    world = await build_world(sessions, clock, balance=Decimal("1"))
    async with transaction(sessions) as session:
        credentials = await issue_smpp_credentials(session, world.client_id)
    port = free_port()
    async with api_client(database_url, clock, with_workers=True, settings={"smpp_port": port}):
        yield Setup(world, credentials, port, sessions)


async def _messages(sessions: async_sessionmaker[AsyncSession]) -> list[Message]:
    async with transaction(sessions) as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())


async def test_submit_gets_an_id_and_a_receipt(setup: Setup) -> None:
    esme = Esme(setup.port)
    await esme.bind(setup.credentials)
    try:
        await esme.submit("hello over smpp")
        await esme.pump(lambda: bool(esme.sent) and bool(esme.received))
    finally:
        await esme.close()
    [resp] = esme.sent
    assert resp.status == 0
    message_id = resp.message_id.decode()
    [message] = await _messages(setup.sessions)
    assert str(message.id) == message_id
    assert message.source == "smpp" and message.body == "hello over smpp"
    assert message.price == Decimal("0.02") and message.parts == 1
    [receipt] = esme.received
    assert receipt.receipted_message_id.decode().rstrip("\0") == message_id
    assert receipt.message_state == 2
    assert b"stat:DELIVRD" in receipt.short_message
    assert f"id:{message_id} ".encode() in receipt.short_message
    for _ in range(50):  # marked sent right after the deliver_sm_resp, by the receipt task
        async with transaction(setup.sessions) as session:
            [row] = (await session.execute(select(SmppReceipt))).scalars()
        if row.sent_at is not None:
            break
        await asyncio.sleep(0.1)
    assert row.sent_at is not None


async def test_wrong_password_is_refused(setup: Setup) -> None:
    # The server answers ESME_RINVPASWD and closes the link; a client may see the close
    # before it has read the answer (smpplib then raises ConnectionError): refused either way.
    for credentials in (
        Credentials(setup.credentials.login, "nope1234"),
        Credentials("nobody", setup.credentials.password),
    ):
        esme = Esme(setup.port)
        try:
            with pytest.raises(
                (smpplib.exceptions.PDUError, smpplib.exceptions.ConnectionError)
            ) as refused:
                await esme.bind(credentials)
            if isinstance(refused.value, smpplib.exceptions.PDUError):
                # The second failure from this address is throttled (binds.py).
                assert refused.value.args[1] in (ESME_RINVPASWD, ESME_RBINDFAIL)
        finally:
            await esme.close()


async def test_bind_limit(setup: Setup) -> None:
    binds = [Esme(setup.port) for _ in range(3)]
    try:
        await binds[0].bind(setup.credentials, "transmitter")
        await binds[1].bind(setup.credentials, "receiver")
        with pytest.raises(smpplib.exceptions.PDUError) as refused:
            await binds[2].bind(setup.credentials)
        assert refused.value.args[1] == ESME_RBINDFAIL
    finally:
        for esme in binds:
            await esme.close()
    # A bind that ended frees its slot.
    again = Esme(setup.port)
    await again.bind(setup.credentials)
    await again.close()


async def test_concatenated_input_is_one_message_priced_by_parts(setup: Setup) -> None:
    text = "".join(f"part-of-a-long-text {i:03d} " for i in range(12))  # 300 GSM chars
    esme = Esme(setup.port)
    await esme.bind(setup.credentials, "transmitter")
    try:
        await esme.submit(text)
        await esme.pump(lambda: len(esme.sent) == 2)
    finally:
        await esme.close()
    assert {pdu.status for pdu in esme.sent} == {0}
    assert len({pdu.message_id for pdu in esme.sent}) == 2  # every part answers its own id
    [message] = await _messages(setup.sessions)
    assert message.body == text
    assert message.parts == 2 and message.price == Decimal("0.04")


async def test_throughput_and_balance(setup: Setup) -> None:
    async with transaction(setup.sessions) as session:
        client = await session.get(Client, setup.world.client_id)
        assert client is not None
        client.smpp_throughput = 2
        client.balance = Decimal("0.03")
    esme = Esme(setup.port)
    await esme.bind(setup.credentials, "transmitter")
    burst = 6
    started = time.monotonic()
    try:
        for i in range(burst):
            await esme.submit(f"burst {i}", phone=f"38097123450{i}")
        await esme.pump(lambda: len(esme.sent) == burst)
    finally:
        await esme.close()
    elapsed = time.monotonic() - started
    statuses = sorted(pdu.status for pdu in esme.sent)
    # One charged (0.02 of 0.03); the bucket holds 2 and gains 2 a second, so whatever came
    # beyond that while the burst lasted was throttled, and what it let through past the
    # first was over the balance. (A loaded machine stretches the burst: count, not order.)
    assert statuses.count(0) == 1
    assert set(statuses) <= {0, ESME_RSUBMITFAIL, ESME_RTHROTTLED}
    assert statuses.count(ESME_RTHROTTLED) >= burst - 2 - int(elapsed * 2)
    assert statuses.count(ESME_RSUBMITFAIL) >= 1  # the bucket's second token


async def test_receipt_waits_for_a_receiver_bind(setup: Setup) -> None:
    sender = Esme(setup.port)
    await sender.bind(setup.credentials, "transmitter")
    try:
        await sender.submit("stored receipt")
        await sender.pump(lambda: bool(sender.sent))
    finally:
        await sender.close()
    message_id = sender.sent[0].message_id.decode()

    async def final() -> bool:
        async with transaction(setup.sessions) as session:
            rows = list((await session.execute(select(SmppReceipt))).scalars())
        return bool(rows) and rows[0].sent_at is None

    for _ in range(100):
        if await final():
            break
        await asyncio.sleep(0.1)
    assert await final()  # stored, nobody to send it to
    receiver = Esme(setup.port)
    await receiver.bind(setup.credentials, "receiver")
    try:
        await receiver.pump(lambda: bool(receiver.received))
    finally:
        await receiver.close()
    [receipt] = receiver.received
    assert receipt.receipted_message_id.decode().rstrip("\0") == message_id


async def test_smpplib_long_messages_by_udh_and_sar_receipts_on_first_or_every_part(
    setup: Setup,
) -> None:
    """smpplib cuts at octets, so a surrogate pair and a GSM-7 escape are split between
    parts; each message arrives whole, and each part that asked gets its own receipt."""
    ucs2 = "Привіт! " * 8 + "ab😀 кінець"  # the emoji's pair straddles octet 134
    assert len(ucs2.encode("utf-16-be")) > 134
    assert 0xD8 <= ucs2.encode("utf-16-be")[132] <= 0xDB
    gsm = "x" * 152 + "{brace} and €uro " * 10  # ESC | ( at octet 153
    cases = [(ucs2, False, False), (gsm, False, True), (gsm, True, False), (ucs2, True, True)]
    esme = Esme(setup.port)
    await esme.bind(setup.credentials)
    asked: dict[int, int] = {}
    try:
        for reference, (text, sar, every) in enumerate(cases, start=1):
            asked |= await esme.submit_long(text, reference, sar=sar, every_part=every)
        wanted = sum(asked.values())
        await esme.pump(lambda: len(esme.sent) == len(asked) and len(esme.received) >= wanted)
    finally:
        await esme.close()
    assert {pdu.status for pdu in esme.sent} == {0}
    reply = {pdu.sequence: pdu.message_id.decode() for pdu in esme.sent}
    assert len(set(reply.values())) == len(asked)  # every part its own id
    expected = sorted(reply[seq] for seq, rd in asked.items() if rd)
    got = sorted(r.receipted_message_id.decode().rstrip("\0") for r in esme.received)
    assert got == expected  # a receipt for each part that asked, by its own id
    assert all(b"stat:DELIVRD" in r.short_message for r in esme.received if r.data_coding == 0)
    assert sorted(m.body for m in await _messages(setup.sessions)) == sorted(t for t, _, _ in cases)
