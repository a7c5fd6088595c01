"""The console across channels: a Viber message that fell back to SMS shows both legs,
each with its own history, in one search (messages written by the real Viber pipeline)."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_console import PASSWORD, _sign_in
from tests.integration.test_viber_api import build_viber_world
from tests.integration.test_viber_fallback import (
    ALTERNATIVE,
    PHONE,
    messages_by_channel,
    run_worker,
    send_one,
)
from tests.support import api_client
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.operators.service import create_operator


def _steps(section: str) -> list[str]:
    return re.findall(r"<b>(\w+)</b> <time>", section)


async def test_a_viber_message_and_its_sms_fallback_leg(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    vw = await build_viber_world(sessions, clock, viber_options={"non_users": PHONE})
    viber_id = await send_one(database_url, vw, clock, options=ALTERNATIVE)
    await run_worker(sessions, clock)
    [sms] = (await messages_by_channel(sessions))["sms"]
    async with transaction(sessions) as session:
        await create_operator(session, clock, name="olga", password=PASSWORD)
    async with api_client(database_url, clock) as http:
        await _sign_in(http, "olga", PASSWORD)
        # The phone finds both legs.
        found = await http.get("/console/messages", params={"q": PHONE})
        rows = found.text.split('id="results"')[1]
        assert f"/console/messages/{viber_id}" in rows and f"/console/messages/{sms.id}" in rows
        assert "viber" in rows and "sms" in rows
        page = (await http.get(f"/console/messages/{viber_id}")).text
        viber_part, _, sms_part = page.partition(f'id="message-{sms.id}"')
        assert "VIBER message" in viber_part
        assert _steps(viber_part)[0] == "accepted"
        assert _steps(viber_part)[-1] == "not_viber_user"
        assert f"stands in for message {viber_id} (its fallback)" in sms_part
        assert _steps(sms_part)[0] == "accepted"
        assert _steps(sms_part)[-1] == "delivered"
        # And from the SMS leg back to the Viber message.
        leg = (await http.get(f"/console/messages/{sms.id}")).text
        assert f"is the one message {sms.id} stands in for" in leg
        # The overview counts the Viber failure among the latest failures.
        overview = (await http.get("/console")).text
        failures = overview.split('id="failures"')[1].split("</table>")[0]
        assert "not_viber_user" in failures and f"/console/messages/{viber_id}" in failures
