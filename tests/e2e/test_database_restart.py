"""A database that goes away (issue 15, items 12 and 13): a PostgreSQL server this test owns
is stopped and started again while `tidings serve` carries 1,000 messages with webhooks.

While it is down, every API answers 503 with Retry-After in its own format and /health
says not ready; once it is back, every message reaches a final status and every webhook
is delivered: no message stuck in `sent`, no callback lost.

The server is our own `initdb` in a temporary folder on a free port (run as the
`postgres` user when the test runs as root, since initdb refuses root). Where that is not
possible the test is skipped, unless TIDINGS_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tests.e2e.gateway import Gateway, free_port
from tests.support import Receiver
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.db.migrate import upgrade
from tidings.messages.models import Message
from tidings.messages.status import FINAL_STATUSES
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.repository import DELIVERED

MESSAGES = 1_000
PER_REQUEST = 100
PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"
FAST_RETRIES = ",".join(["1"] * 50)


def _unavailable(reason: str) -> None:
    if os.environ.get("TIDINGS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"cannot run a private PostgreSQL server: {reason}")
    pytest.skip(f"cannot run a private PostgreSQL server: {reason}")


class PrivateServer:
    """A PostgreSQL cluster of our own: initdb, pg_ctl start/stop, all on one free port."""

    def __init__(self, bindir: Path, directory: Path, port: int, as_user: list[str]) -> None:
        self.bindir = bindir
        self.directory = directory
        self.port = port
        self.as_user = as_user
        self.url = f"postgresql://postgres@127.0.0.1:{port}/tidings"

    async def _run(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.as_user,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 120)
        if process.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {output.decode()[-2000:]}")

    async def init(self) -> None:
        await self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.directory / "data"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        )

    async def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c autovacuum=off -c max_connections=100"
        )
        await self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    async def stop(self) -> None:
        await self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "stop"
        )

    async def create_database(self) -> None:
        connection = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", timeout=10
        )
        try:
            await connection.execute('CREATE DATABASE "tidings"')
        finally:
            await connection.close()


@pytest.fixture
async def server() -> AsyncIterator[PrivateServer]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = shutil.which("initdb") or (found[-1] if found else None)
    if initdb is None:
        _unavailable("no initdb found")
    bindir = Path(str(initdb)).parent
    directory = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            shutil.rmtree(directory, ignore_errors=True)
            _unavailable("running as root without runuser and a postgres user")
        assert owner is not None and runuser is not None
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    node = PrivateServer(bindir, directory, free_port(), as_user)
    try:
        await node.init()
        await node.start()
        await node.create_database()
    except (RuntimeError, OSError) as error:
        shutil.rmtree(directory, ignore_errors=True)
        _unavailable(str(error)[:500])
    try:
        yield node
    finally:
        with contextlib.suppress(Exception):
            await node.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


async def _send(http: httpx.AsyncClient, key: str, batch: int) -> None:
    """One request of PER_REQUEST messages, offered again while the gateway answers 503
    (as a client honouring Retry-After would, sooner: the test is bounded)."""
    phones = [
        {"msisdn": f"3809710{batch:02d}{n:03d}", "reference": f"b{batch}m{n}"}
        for n in range(PER_REQUEST)
    ]
    body = {"destination": "phones", "phones": phones, "originator": "Shop", "body": "hi"}
    for _ in range(200):
        try:
            answer = await http.post("/rest/sms/create", json=body, headers={"X-API-KEY": key})
        except httpx.TransportError:
            await asyncio.sleep(0.2)
            continue
        if answer.status_code == 503:
            assert answer.headers["retry-after"].isdigit()
            await asyncio.sleep(0.2)
            continue
        payload: Any = answer.json()
        if payload["error"] == "23":  # an answer lost in the outage: it was stored
            return
        assert answer.status_code == 200, payload
        return
    raise AssertionError(f"batch {batch} was never accepted")


async def test_postgresql_restart_under_load_loses_nothing(
    server: PrivateServer, tmp_path: Path
) -> None:
    await upgrade(server.url)
    gateway = Gateway(
        server.url,
        tmp_path,
        lease_seconds="5",
        sweep_interval="0.5",
        webhook_lease_seconds="5",
        webhook_timeout="2",
        cache_ttl="0",  # every request touches the database, so the outage shows
    )
    engine = create_engine(server.url)
    sessions = create_sessionmaker(engine)
    try:
        async with Receiver() as receiver:
            (tmp_path / "prices.csv").write_text(PRICES)
            gateway.cli("prices", "import", str(tmp_path / "prices.csv"))
            client = gateway.cli("clients", "create", "--name", "acme", "--balance", "100")
            gateway.cli(
                "clients",
                "update",
                str(client["id"]),
                "--callback-url",
                receiver.url,
                "--retry-schedule",
                FAST_RETRIES,
            )
            dr = gateway.cli("clients", "dr-credentials", str(client["id"]))
            gateway.cli(
                "suppliers",
                "create",
                "--name",
                "sim",
                "--kind",
                "simulator",
                "--option",
                "dlr_delay_ms=300",
            )
            gateway.cli("routes", "create", "--type", "sms", "--supplier", "sim")
            gateway.start(timeout=120)  # a loaded machine starts slowly
            key = str(client["live_key"])
            batches = MESSAGES // PER_REQUEST
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
                # Half the messages before the outage; the first are in flight when it starts.
                await asyncio.gather(*(_send(http, key, b) for b in range(batches // 2)))
                await server.stop()

                # While the database is away: 503 + Retry-After, in each API's own format.
                created = await http.post(
                    "/rest/sms/create",
                    json={"destination": "phone", "msisdn": "380972000000", "body": "x"},
                    headers={"X-API-KEY": key},
                )
                assert created.status_code == 503, created.text
                assert created.headers["retry-after"].isdigit()
                assert created.json()["error"] == "11"
                dlr = await http.post(
                    "/api/dlr",
                    data={"_login": "x", "_password": "y", "id": "1", "state": "delivered"},
                )
                assert dlr.status_code == 503, dlr.text
                assert dlr.headers["retry-after"].isdigit()
                assert dlr.json()["errors"][0]["code"] == "unavailable"
                report = await http.get(
                    f"/{client['id']}/api/dr/1/simple", auth=(dr["login"], dr["password"])
                )
                assert report.status_code == 503, report.text
                assert report.json()["error"] == "unavailable"
                health = await http.get("/health")
                assert health.status_code == 503 and health.json()["status"] != "ok"

                # The other half is offered during the outage and taken once it ends.
                late = [
                    asyncio.create_task(_send(http, key, b)) for b in range(batches // 2, batches)
                ]
                await asyncio.sleep(2)
                await server.start()
                await asyncio.gather(*late)

                async def healthy() -> bool:
                    return (await http.get("/health")).status_code == 200

                await _until(healthy, 30, "/health is ok again")

            async def all_final() -> bool:
                async with sessions() as session:
                    total = await session.scalar(select(func.count()).select_from(Message))
                    open_ = await session.scalar(
                        select(func.count())
                        .select_from(Message)
                        .where(Message.status.not_in([s.value for s in FINAL_STATUSES]))
                    )
                return total == MESSAGES and open_ == 0

            await _until(all_final, 120, "every message final")

            async def all_pushed() -> bool:
                async with sessions() as session:
                    waiting = await session.scalar(
                        select(func.count())
                        .select_from(WebhookDelivery)
                        .where(WebhookDelivery.state != DELIVERED)
                    )
                return waiting == 0

            try:
                await _until(all_pushed, 120, "every webhook delivered")
            except AssertionError:
                async with sessions() as session:
                    states = (
                        await session.execute(
                            select(
                                WebhookDelivery.state,
                                WebhookDelivery.attempts,
                                WebhookDelivery.last_error,
                                WebhookDelivery.next_attempt_at,
                                WebhookDelivery.locked_until,
                                func.count(),
                            )
                            .where(WebhookDelivery.state != DELIVERED)
                            .group_by(
                                WebhookDelivery.state,
                                WebhookDelivery.attempts,
                                WebhookDelivery.last_error,
                                WebhookDelivery.next_attempt_at,
                                WebhookDelivery.locked_until,
                            )
                            .limit(20)
                        )
                    ).all()
                log = "\n".join(
                    line[:300]
                    for line in (tmp_path / "serve.log").read_text().splitlines()
                    if "webhook" in line.lower()
                )[-4000:]
                raise AssertionError(f"webhooks left: {states}\n{log}") from None
            async with sessions() as session:
                deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
                statuses = dict(
                    (
                        await session.execute(
                            select(Message.status, func.count()).group_by(Message.status)
                        )
                    ).all()
                )
        assert statuses == {"delivered": MESSAGES}, statuses
        # Every delivery reached the receiver; a receiver that dedupes by webhook-id sees
        # each exactly once (a resend after a lost answer keeps its id).
        received = receiver.successes_by_id()
        assert len(received) == deliveries
        finals = {
            orjson.loads(r.body)["id"]
            for r in receiver.answered()
            if orjson.loads(r.body)["status"] == "delivered"
        }
        assert len(finals) == MESSAGES
    finally:
        gateway.stop()
        await engine.dispose()
