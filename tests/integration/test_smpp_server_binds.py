"""Password guessing over SMPP is held off: failed binds answered ever later, per address and
per system_id; a correct bind from elsewhere is not slowed; failures counted and logged."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import build_world
from tidings.accounts.service import Credentials, issue_smpp_credentials
from tidings.clock import SystemClock
from tidings.connectors.smpp.pdu import (
    BindTransmitter,
    CommandStatus,
    Pdu,
    decode,
    encode,
)
from tidings.db.engine import transaction
from tidings.messages.acceptance import Limits
from tidings.messages.catalog import CatalogCache
from tidings.messages.writer import AcceptQueue
from tidings.observability.metrics import Metrics
from tidings.smpp_server.binds import BindDelays
from tidings.smpp_server.server import ServerOptions, SmppServer


@dataclass
class Sleeps:
    """The server's sleeper in tests: records each delay, passes at once."""

    taken: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        await asyncio.sleep(0)


@dataclass
class Served:
    server: SmppServer
    credentials: Credentials
    metrics: Metrics
    sleeps: Sleeps


async def _serve(
    sessions: async_sessionmaker[AsyncSession], delays: BindDelays, sleeps: Sleeps | None
) -> AsyncIterator[Served]:
    clock = SystemClock()
    world = await build_world(sessions, clock)
    async with transaction(sessions) as session:
        credentials = await issue_smpp_credentials(session, world.client_id)
    accepts = AcceptQueue(sessions, clock)
    accepts.start()
    metrics = Metrics()
    options = ServerOptions(port=0, bind_delays=delays)
    catalog = CatalogCache(sessions, ttl=0)
    recorder = sleeps or Sleeps()
    extra = {"bind_sleep": recorder} if sleeps is not None else {}
    server = SmppServer(
        sessions, clock, catalog, accepts, Limits(), options, metrics=metrics, **extra
    )
    await server.start()
    try:
        yield Served(server, credentials, metrics, recorder)
    finally:
        await server.stop()
        await accepts.stop()


@pytest.fixture
async def served(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Served]:
    async for value in _serve(sessions, BindDelays(), Sleeps()):
        yield value


async def _bind(port: int, system_id: str, password: str, source: str = "127.0.0.1") -> Pdu:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(encode(BindTransmitter(system_id=system_id, password=password)))
        head = await asyncio.wait_for(reader.readexactly(4), 30)
        rest = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big") - 4), 5)
        return decode(head + rest)
    finally:
        writer.close()
        await writer.wait_closed()


def test_the_delay_curve() -> None:
    delays = BindDelays()
    curve = [delays.delay(n) for n in range(1, 51)]
    assert curve[:5] == [0.25, 0.5, 1.0, 2.0, 4.0] and max(curve) == 4.0
    assert curve == sorted(curve)
    assert sum(curve) >= 30  # 50 wrong passwords: over three minutes
    assert delays.delay(10_000) == 4.0


async def test_fifty_wrong_passwords_take_over_30_s_and_others_are_not_slowed(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    login = served.credentials.login
    port = served.server.port
    caplog.set_level(logging.WARNING, logger="tidings.smpp.server")
    answers = [(await _bind(port, login, f"guess{n}")).command_status for n in range(50)]
    assert answers[0] == CommandStatus.ESME_RINVPASWD
    assert set(answers[1:]) == {CommandStatus.ESME_RBINDFAIL}
    assert len(served.sleeps.taken) == 50 and sum(served.sleeps.taken) >= 30
    # The real client, from another address and with the right password: at once.
    started = time.monotonic()
    ok = await _bind(port, login, served.credentials.password, source="127.0.0.2")
    assert ok.command_status == CommandStatus.ESME_ROK
    assert time.monotonic() - started < 2 and len(served.sleeps.taken) == 50
    # The guesser's address stays held off even with a right password.
    held = await _bind(port, "nobody", "x")
    assert held.command_status == CommandStatus.ESME_RBINDFAIL
    assert served.sleeps.taken[-1] == 4.0
    assert served.metrics.smpp_bind_failures._value.get() == 51
    assert b"tidings_smpp_bind_failures_total 51.0" in served.metrics.render()
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_per_system_id_count_slows_a_guesser_from_many_addresses(served: Served) -> None:
    login = served.credentials.login
    for n in range(4):
        await _bind(served.server.port, login, "wrong", source=f"127.0.1.{n + 1}")
    # Each address failed once, but the system_id four times: the delays grew.
    assert served.sleeps.taken == [0.25, 0.5, 1.0, 2.0]


async def test_parallel_guesses_wait_for_each_other_in_real_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The real sleeper on a curve scaled down 100 times (sum over 50: 1.88 s): 50 guesses
    # on 50 connections at once still take the whole sum, one after another.
    delays = BindDelays(base=0.0025, cap=0.04)
    expected = sum(delays.delay(n) for n in range(1, 51))
    async for served in _serve(sessions, delays, None):
        started = time.monotonic()
        guesses = [_bind(served.server.port, served.credentials.login, f"g{n}") for n in range(50)]
        answers = await asyncio.gather(*guesses)
        elapsed = time.monotonic() - started
        assert all(a.command_status != CommandStatus.ESME_ROK for a in answers)
        assert elapsed >= expected * 0.99, (elapsed, expected)
        started = time.monotonic()
        ok = await _bind(
            served.server.port,
            served.credentials.login,
            served.credentials.password,
            source="127.0.0.3",
        )
        assert ok.command_status == CommandStatus.ESME_ROK
        assert time.monotonic() - started < 1.0
