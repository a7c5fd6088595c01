"""SMPP end to end: REST → `tidings serve` → SMPP → an SMSC process → receipt → webhook.

The SMSC is ``python -m tidings.connectors.smpp.smsc`` with a journal (as a real SMSC keeps
its store on disk), killed with SIGKILL mid-run and started again on the same port.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.e2e.gateway import Gateway, free_port
from tests.support import Receiver, history
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.messages.models import Message

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"


class SmscProcess:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.journal = workdir / "smsc.journal"
        self.log = workdir / "smsc.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tidings.connectors.smpp.smsc",
                    "--port",
                    str(self.port),
                    "--journal",
                    str(self.journal),
                    "--receipt-delay-ms",
                    "20",
                ],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        assert "listening" in line, self.log.read_text()

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self._close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def submits(self) -> list[str]:
        """Destinations of every submit_sm the SMSC took (from its journal), in order."""
        if not self.journal.exists():
            return []
        return [line for line in self.journal.read_text().splitlines() if line.startswith("S")]


@pytest.fixture
def smsc(tmp_path: Path) -> Iterator[SmscProcess]:
    node = SmscProcess(tmp_path)
    node.start()
    yield node
    node.stop()


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(database_url, tmp_path, lease_seconds="5", sweep_interval="0.5")
    yield node
    node.stop()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


def setup(node: Gateway, tmp_path: Path, smsc: SmscProcess, callback_url: str) -> str:
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    node.cli("prices", "import", str(prices))
    client = node.cli("clients", "create", "--name", "acme", "--balance", "100")
    node.cli("clients", "update", str(client["id"]), "--callback-url", callback_url)
    options = {
        "host": "127.0.0.1",
        "port": str(smsc.port),
        "system_id": "tidings",
        "password": "secret",
        "binds": "2",
        "window": "20",
        "reconnect_delay": "0.1",
        "reconnect_max": "0.5",
        "bind_wait": "1",
    }
    pairs = [arg for key, value in options.items() for arg in ("--option", f"{key}={value}")]
    node.cli("suppliers", "create", "--name", "smsc", "--kind", "smpp", *pairs)
    node.cli("routes", "create", "--type", "sms", "--supplier", "smsc")
    return str(client["live_key"])


async def eventually(predicate: Callable[[], Awaitable[bool]], within: float = 60) -> None:
    for _ in range(int(within / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_rest_to_smpp_to_webhook(gateway: Gateway, smsc: SmscProcess, tmp_path: Path) -> None:
    async with Receiver() as receiver:
        key = await asyncio.to_thread(setup, gateway, tmp_path, smsc, receiver.url)
        await asyncio.to_thread(gateway.start)
        async with httpx.AsyncClient(
            base_url=gateway.base_url, headers={"X-API-KEY": key}, timeout=10
        ) as http:
            created = (
                await http.post(
                    "/rest/sms/create",
                    headers={"X-API-KEY": key},
                    json={
                        "destination": "phone",
                        "msisdn": "380972000000",
                        "reference": "smpp1",
                        "originator": "Tidings",
                        "body": "over SMPP: Привіт " * 6,  # UCS-2, 2 parts
                    },
                )
            ).json()
            assert created["error"] == "0", created

            async def delivered_hook() -> bool:
                return any(
                    orjson.loads(r.body)["status"] == "delivered" for r in receiver.answered()
                )

            await eventually(delivered_hook)
            status = (await http.get(f"/rest/sms/{created['id']}")).json()
    assert status.get("status") == "delivered", status
    assert len(smsc.submits()) == 2  # both parts went out, each with a receipt


async def test_smsc_killed_mid_run_everything_delivered_once(
    gateway: Gateway,
    smsc: SmscProcess,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with Receiver() as receiver:
        key = await asyncio.to_thread(setup, gateway, tmp_path, smsc, receiver.url)
        gateway.env["TIDINGS_DISPATCH_BATCH_SIZE"] = "50"
        await asyncio.to_thread(gateway.start)
        total = 1500
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
            phones = [{"msisdn": f"38097300{i:04d}", "reference": f"k{i}"} for i in range(total)]
            answer = (
                await http.post(
                    "/rest/sms/create",
                    headers={"X-API-KEY": key},
                    json={
                        "destination": "phones",
                        "phones": phones,
                        "originator": "T",
                        "body": "b",
                    },
                )
            ).json()
            assert answer["error"] == "0"

        async def count(status: str) -> int:
            async with sessions() as session:
                found = await session.scalar(
                    select(func.count()).select_from(Message).where(Message.status == status)
                )
            return found or 0

        async def some_out() -> bool:
            return len(smsc.submits()) >= 200

        await eventually(some_out)
        smsc.kill()  # kill -9 mid-run: binds cut, submits in flight unanswered
        assert await count("delivered") < total
        await asyncio.sleep(1.0)
        smsc.start()

        async def all_delivered() -> bool:
            return await count("delivered") == total

        await eventually(all_delivered, within=90)
    async with sessions() as session:
        changes = await history(session)
    rows = [
        (status, n, len({m for m, s in changes if s == status}))
        for status, n in Counter(s for _, s in changes).items()
    ]
    # Nothing recorded twice: each message was sent once and delivered once.
    assert {status: (n, distinct) for status, n, distinct in rows} == {
        "sent": (total, total),
        "delivered": (total, total),
    }
    # The SMSC may have taken a submit whose answer the kill cut (then sent again): few.
    assert total <= len(smsc.submits()) <= total + 40
