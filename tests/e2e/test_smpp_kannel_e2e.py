"""Kannel (Debian's bearerbox + smsbox) as the ESME of our SMPP server, `concatenation = true`.

Kannel splits each long text into UDH parts, asks for a receipt on the first part only
(registered_delivery on part 1), and matches the receipt we send back to its own DLR store by
the message_id of that part's submit_sm_resp; it then calls the dlr-url. Ten concatenated
messages, with GSM-7 escapes and UCS-2 text around the part boundaries, must arrive intact
and each must come back to Kannel as a final DLR.

Skipped when Kannel is not installed, unless TIDINGS_REQUIRE_KANNEL=1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.e2e.gateway import free_port
from tests.support import Receiver, api_client, build_world
from tidings.accounts.service import Credentials, issue_smpp_credentials
from tidings.clock import SystemClock
from tidings.db.engine import transaction
from tidings.messages.models import Message

BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"
HAVE_KANNEL = os.path.exists(BEARERBOX) and os.path.exists(SMSBOX)

pytestmark = pytest.mark.skipif(
    not HAVE_KANNEL and os.environ.get("TIDINGS_REQUIRE_KANNEL") != "1",
    reason="Kannel (bearerbox, smsbox) is not installed",
)


@dataclass
class Kannel:
    sendsms_port: int
    directory: Path
    processes: list[asyncio.subprocess.Process]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.directory.glob("*.log"))
        )


def _config(directory: Path, smpp_port: int, credentials: Credentials) -> tuple[Path, int]:
    admin, smsbox, sendsms = free_port(), free_port(), free_port()
    config = directory / "kannel.conf"
    config.write_text(
        f"""
group = core
admin-port = {admin}
admin-password = secret
smsbox-port = {smsbox}
admin-interface = 127.0.0.1
log-file = "{directory}/bearerbox.log"
log-level = 0
access-log = "{directory}/access.log"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = tidings
host = 127.0.0.1
port = {smpp_port}
transceiver-mode = true
smsc-username = "{credentials.login}"
smsc-password = "{credentials.password}"
system-type = ""
source-addr-ton = 5
source-addr-npi = 0
dest-addr-ton = 1
dest-addr-npi = 1
enquire-link-interval = 30
reconnect-delay = 1
max-pending-submits = 10

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{directory}/smsbox.log"
log-level = 0

group = sendsms-user
username = tester
password = secret
concatenation = true
max-messages = 10
"""
    )
    return config, sendsms


async def _start(directory: Path, smpp_port: int, credentials: Credentials) -> Kannel:
    config, sendsms = _config(directory, smpp_port, credentials)
    quiet = asyncio.subprocess.DEVNULL
    bearerbox = await asyncio.create_subprocess_exec(
        BEARERBOX, str(config), stdout=quiet, stderr=quiet
    )
    await asyncio.sleep(1.0)  # smsbox gives up when bearerbox is not listening yet
    smsbox = await asyncio.create_subprocess_exec(SMSBOX, str(config), stdout=quiet, stderr=quiet)
    return Kannel(sendsms, directory, [bearerbox, smsbox])


async def _stop(kannel: Kannel) -> None:
    for process in reversed(kannel.processes):
        if process.returncode is None:
            process.terminate()
    for process in kannel.processes:
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class Setup:
    sessions: async_sessionmaker[AsyncSession]
    credentials: Credentials
    port: int


@pytest.fixture
async def setup(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Setup]:
    clock = SystemClock()
    world = await build_world(sessions, clock, balance=Decimal("10"))
    async with transaction(sessions) as session:
        credentials = await issue_smpp_credentials(session, world.client_id)
    port = free_port()
    async with api_client(database_url, clock, with_workers=True, settings={"smpp_port": port}):
        yield Setup(sessions, credentials, port)


def _texts() -> list[str]:
    """Ten texts of two or three parts; escapes and UCS-2 around where parts are cut."""
    texts = []
    for n in range(8):
        # GSM-7: Kannel cuts at 153 septets; an escape pair lands on each side of the cut.
        head = "x" * (150 + n % 4)
        texts.append(f"{head}{{€}}[~] message {n} " + "y" * (140 + n) + "|^\\ end")
    texts.append("Привіт, світ! " * 10)  # UCS-2, three parts
    texts.append("Ціна: 100€ {знижка} " * 6)
    return texts


async def test_kannel_gets_a_receipt_for_every_concatenated_message(
    setup: Setup, tmp_path: Path
) -> None:
    directory = tmp_path / "kannel"
    directory.mkdir()
    texts = _texts()
    async with Receiver() as dlrs:
        kannel = await _start(directory, setup.port, setup.credentials)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                for number, text in enumerate(texts):
                    coding = "0" if number < 8 else "2"
                    dlr_url = f"{dlrs.url}?n={number}&type=%d&id=%F"
                    for _ in range(100):  # smsbox may still be connecting to bearerbox
                        try:
                            answer = await http.get(
                                f"http://127.0.0.1:{kannel.sendsms_port}/cgi-bin/sendsms",
                                params={
                                    "username": "tester",
                                    "password": "secret",
                                    "smsc": "tidings",
                                    "from": "Tidings",
                                    "to": "380971234567",
                                    "text": text,
                                    "charset": "UTF-8",
                                    "coding": coding,
                                    "dlr-mask": "3",
                                    "dlr-url": dlr_url,
                                },
                            )
                        except httpx.TransportError:
                            await asyncio.sleep(0.2)
                            continue
                        if answer.status_code < 300:
                            break
                        await asyncio.sleep(0.2)
                    assert answer.status_code < 300, (answer.text, kannel.logs())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                finals = {
                    int(query["n"][0])
                    for query in (parse_qs(urlsplit(r.target).query) for r in dlrs.requests)
                    if query.get("type") == ["1"]
                }
                if len(finals) == len(texts):
                    break
                await asyncio.sleep(0.2)
        finally:
            await _stop(kannel)
    assert finals == set(range(len(texts))), kannel.logs()[-6000:]
    async with transaction(setup.sessions) as session:
        bodies = list((await session.execute(select(Message.body).order_by(Message.id))).scalars())
    assert sorted(bodies) == sorted(texts)
