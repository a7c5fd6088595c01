"""The SMPP server refuses a submit_sm to an opted-out number with its own command_status
(0x00000400), stores and charges nothing for it, and takes the next number as usual."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.e2e.gateway import free_port
from tests.smpp_esme import Esme
from tests.support import api_client, build_world
from tidings.accounts.models import Client
from tidings.accounts.service import issue_smpp_credentials
from tidings.clock import SystemClock
from tidings.db.engine import transaction
from tidings.messages.models import Message
from tidings.optouts.keywords import KeywordSet
from tidings.optouts.service import apply_inbound_keyword
from tidings.smpp_server.submits import ESME_ROPTEDOUT

OPTED_OUT, OTHER = "380972000002", "380972000003"


async def test_submit_sm_to_an_opted_out_number_is_refused(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = SystemClock()
    world = await build_world(sessions, clock)
    async with transaction(sessions) as session:
        credentials = await issue_smpp_credentials(session, world.client_id)
        await apply_inbound_keyword(
            session,
            client_id=world.client_id,
            msisdn=OPTED_OUT,
            text="STOP",
            keywords=KeywordSet.default(),
            now=clock.now(),
        )
    port = free_port()
    async with api_client(database_url, clock, settings={"smpp_port": port}):
        esme = Esme(port)
        await esme.bind(credentials)
        try:
            await esme.submit("to the one who said stop", phone=OPTED_OUT)
            await esme.pump(lambda: len(esme.sent) == 1)
            await esme.submit("to someone else", phone=OTHER)
            await esme.pump(lambda: len(esme.sent) == 2)
        finally:
            await esme.close()
    assert [pdu.status for pdu in esme.sent] == [ESME_ROPTEDOUT, 0]
    async with sessions() as session:
        stored = list((await session.execute(select(Message.msisdn))).scalars())
        client = await session.get(Client, world.client_id)
    assert stored == [OTHER]
    assert client is not None and client.balance == Decimal("9.98")
