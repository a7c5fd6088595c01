"""`python -m bench.hlr`: HLR lookups per second, end to end.

A fresh SQLite database (or --database-url) gets a client whose callback URL is a minimal
receiver in its own process (bench.webhooks'), HLR prices and an `hlr_simulator` provider.
`tidings serve` then runs on a free port of 127.0.0.1, and `--count` lookups are posted as
multipart bulk requests (`payload`, `--bulk-size` numbers each, `--concurrency` at once).
Measured: from the first request until every lookup's result callback was delivered
(accepted → simulator → result stored → webhook delivered), and the acceptance rate alone.
Bounded in count (--count) and time (--time-limit); the server and the receiver are stopped
by their own pids in a `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select

from bench.webhooks import _wait_listening, free_port
from tidings.accounts.service import create_client
from tidings.billing.service import import_prices
from tidings.clock import SystemClock
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.migrate import upgrade
from tidings.hlr.models import HlrLookup
from tidings.numbering import CountryTable
from tidings.routing.service import create_route, create_supplier
from tidings.webhooks.models import WebhookDelivery

PRICES = "type,tariff,country,price,currency\nhlr,0,UA,0.002,EUR\n"
TIDINGS = str(Path(sys.executable).with_name("tidings"))


async def seed(database_url: str, hook: str) -> str:
    """The client, prices and provider; the client's live key."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    try:
        async with transaction(sessions) as session:
            await import_prices(session, CountryTable.load(), PRICES)
            created = await create_client(
                session, clock, name="bench", balance=Decimal(10**6), callback_url=hook
            )
            provider = await create_supplier(session, clock, name="hlr", kind="hlr_simulator")
            await create_route(session, clock, type_="hlr", supplier=provider.name)
        return created.live_key
    finally:
        await engine.dispose()


async def feed(base_url: str, key: str, count: int, bulk: int, concurrency: int) -> float:
    """Post every lookup; seconds until the last answer."""
    numbers = [str(380970000000 + i) for i in range(count)]
    bodies = [
        orjson.dumps(
            [
                {"msisdn": n, "reference": f"b{start + i}"}
                for i, n in enumerate(numbers[start:][:bulk])
            ]
        ).decode()
        for start in range(0, count, bulk)
    ]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    started = time.perf_counter()

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            answer = await http.post(
                "/hlr/create", headers={"X-API-KEY": key}, files={"payload": (None, body)}
            )
            if answer.status_code != 200 or answer.json().get("error") != "0":
                raise RuntimeError(f"create failed: {answer.text[:200]}")

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return time.perf_counter() - started


async def wait_delivered(
    database_url: str, count: int, started: float, deadline: float
) -> tuple[int, int, float]:
    """(results stored, callbacks delivered, seconds until every result was stored) once all
    are delivered or the deadline passed."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    all_stored = float("nan")
    try:
        while True:
            async with sessions() as session:
                stored = await session.scalar(
                    select(func.count()).select_from(HlrLookup).where(HlrLookup.status != "sent")
                )
                delivered = await session.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(
                        WebhookDelivery.event == "hlr.result", WebhookDelivery.state == "delivered"
                    )
                )
            if stored == count and all_stored != all_stored:  # still NaN: first time
                all_stored = time.monotonic() - started
            if delivered == count or time.monotonic() > deadline:
                return int(stored or 0), int(delivered or 0), all_stored
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


def _start_server(database_url: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": database_url,
        "TIDINGS_HTTP_HOST": "127.0.0.1",
        "TIDINGS_HTTP_PORT": str(port),
        "TIDINGS_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "server.log").open("ab")
    server = subprocess.Popen([TIDINGS, "serve"], env=env, cwd=workdir, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError((workdir / "server.log").read_text()[-2000:])
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    _stop(server)
    raise TimeoutError("tidings serve did not become healthy")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--bulk-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
        hook_port, port = free_port(), free_port()
        receiver = subprocess.Popen(
            [sys.executable, "-m", "bench.webhooks", "--serve", str(hook_port)]
        )
        server: subprocess.Popen[bytes] | None = None
        try:
            _wait_listening(hook_port)
            asyncio.run(upgrade(database_url))
            key = asyncio.run(seed(database_url, f"http://127.0.0.1:{hook_port}/hook"))
            server = _start_server(database_url, port, workdir)
            started = time.monotonic()
            accept_seconds = asyncio.run(
                feed(f"http://127.0.0.1:{port}", key, args.count, args.bulk_size, args.concurrency)
            )
            stored, delivered, stored_seconds = asyncio.run(
                wait_delivered(database_url, args.count, started, started + args.time_limit)
            )
            total = time.monotonic() - started
        finally:
            if server is not None:
                _stop(server)
            receiver.terminate()
            receiver.wait(timeout=10)
    print(
        f"{args.count} HLR lookups: accepted in {accept_seconds:.2f} s "
        f"({args.count / accept_seconds:,.0f}/s); {stored} results stored in "
        f"{stored_seconds:.2f} s; {delivered} callbacks delivered in {total:.2f} s: "
        f"{delivered / total:,.0f} lookups/s end to end"
    )
    return 0 if delivered == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
