"""Our SMPP server running in the test process, on a free port, for one client with SMPP
credentials: what the server tests that speak raw PDUs share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import build_world
from tidings.accounts.service import Credentials, issue_smpp_credentials
from tidings.clock import Clock
from tidings.db.engine import transaction
from tidings.messages.acceptance import Limits
from tidings.messages.catalog import CatalogCache
from tidings.messages.writer import AcceptQueue
from tidings.smpp_server.server import ServerOptions, SmppServer


@dataclass
class ServedClient:
    server: SmppServer
    client_id: int
    credentials: Credentials


@asynccontextmanager
async def smpp_server(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, options: ServerOptions
) -> AsyncIterator[ServedClient]:
    """A started server (with its accept queue) and a client with a balance of 10 to bind."""
    world = await build_world(sessions, clock, balance=Decimal("10"))
    async with transaction(sessions) as session:
        credentials = await issue_smpp_credentials(session, world.client_id)
    accepts = AcceptQueue(sessions, clock)
    accepts.start()
    server = SmppServer(sessions, clock, CatalogCache(sessions, ttl=0), accepts, Limits(), options)
    await server.start()
    try:
        yield ServedClient(server, world.client_id, credentials)
    finally:
        await server.stop()
        await accepts.stop()
