"""Outbound calls end: an upstream that accepts the connection and never answers costs the
HTTP connector its read timeout, not a stuck lane (the webhook worker and the SMPP session
take theirs from the settings and supplier options the same way)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tidings.clock import FrozenClock
from tidings.connectors.base import OutboundMessage
from tidings.connectors.http import HttpConnector


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections, reads, and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    yield port
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_an_upstream_that_never_answers_times_out(silent_server: int) -> None:
    clock = FrozenClock(datetime(2026, 3, 1, tzinfo=UTC))
    connector = HttpConnector(
        1,
        {"url": f"http://127.0.0.1:{silent_server}", "api_key": "k", "timeout": "0.2"},
        clock,
    )
    await connector.start(lambda reports: None)  # type: ignore[arg-type,return-value]
    message = OutboundMessage(
        1, "380972000000", "test", "hi", "gsm7", 1, clock.now() + timedelta(hours=1)
    )
    try:
        with pytest.raises(httpx.ReadTimeout):
            await connector.submit([message])
    finally:
        await connector.stop()


def test_the_connect_timeout_defaults_to_10_s_and_never_exceeds_the_request_timeout() -> None:
    clock = FrozenClock()
    default = HttpConnector(1, {"url": "http://127.0.0.1:9", "api_key": "k"}, clock)
    short = HttpConnector(1, {"url": "http://127.0.0.1:9", "api_key": "k", "timeout": "3"}, clock)
    assert (default.timeout, default.connect_timeout) == (30.0, 10.0)
    assert (short.timeout, short.connect_timeout) == (3.0, 3.0)
