"""`python -m bench.webhooks`: webhook deliveries per second to a local receiver.

A fresh SQLite (or PostgreSQL, with --database-url) database holds N pending deliveries,
enqueued as the gateway does (status changes through `apply_changes`); a WebhookWorker
then sends them to a minimal HTTP receiver running in its own process, and the time until
the last one is recorded as delivered is measured. Target: 2,000 deliveries/s on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from tidings.accounts.service import Caller, KeyKind, create_client
from tidings.billing.service import import_prices
from tidings.clock import SystemClock
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.migrate import upgrade
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.changes import StatusChange
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.messages.storing import accept_sms
from tidings.numbering import CountryTable
from tidings.routing.service import create_route, create_supplier
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

TARGET = 2_000.0
PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


async def serve(port: int) -> None:
    """The receiver: HTTP/1.1 keep-alive, reads each request, answers 200 at once."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                writer.write(ANSWER)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


async def enqueue(url: str, database_url: str, count: int) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    try:
        async with transaction(sessions) as session:
            await import_prices(session, CountryTable.load(), PRICES)
            created = await create_client(
                session, clock, name="bench", balance=Decimal(10**6), callback_url=url
            )
            supplier = await create_supplier(
                session, clock, name="sim", kind="simulator", options={}
            )
            await create_route(session, clock, type_="sms", supplier=supplier.name)
        caller = Caller(client_id=created.client.id, key_kind=KeyKind.LIVE, tariff=0)
        for start in range(0, count, 1000):
            size = min(1000, count - start)
            items = [
                SmsItem(str(380970000000 + start + i), None, "bench", "hi") for i in range(size)
            ]
            async with transaction(sessions) as session:
                accepted = await accept_sms(
                    session, clock, caller, SmsRequest("phones", items), Limits()
                )
            async with transaction(sessions) as session:
                await apply_changes(
                    session,
                    clock,
                    [
                        StatusChange(item.id, Status.SENT, datetime.now(UTC), sent=True)
                        for item in accepted.items
                    ],
                )
    finally:
        await engine.dispose()


async def deliver(database_url: str, count: int, options: WebhookOptions) -> float:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    worker = WebhookWorker(sessions, SystemClock(), options)
    started = time.perf_counter()
    await worker.start()
    try:
        while True:
            await asyncio.sleep(0.1)
            async with sessions() as session:
                done = await session.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(WebhookDelivery.state != "pending")
                )
            if done == count:
                return time.perf_counter() - started
    finally:
        await worker.stop()
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, limit: float = 30.0) -> None:
    """A refused first attempt would wait a minute for its retry and spoil the figure."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise TimeoutError("the receiver did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--per-host", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the receiver process
    args = parser.parse_args(argv)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.serve))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        port = free_port()
        receiver = subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--serve", str(port)])
        try:
            _wait_listening(port)
            asyncio.run(upgrade(database_url))
            print(f"enqueueing {args.count} deliveries…", file=sys.stderr)
            asyncio.run(enqueue(f"http://127.0.0.1:{port}/hook", database_url, args.count))
            options = WebhookOptions(
                batch_size=args.batch_size, concurrency=args.concurrency, per_host=args.per_host
            )
            seconds = asyncio.run(deliver(database_url, args.count, options))
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
    rate = args.count / seconds
    verdict = "ok" if rate >= TARGET else f"below the {TARGET:,.0f}/s target"
    print(f"{args.count} webhooks in {seconds:.2f} s: {rate:,.0f} delivered/s ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
