"""Issue 13, item 7: a supplier's throughput limit holds across worker processes.

`tidings api` and three `tidings worker` processes share one PostgreSQL; the simulator
supplier is limited to 50 messages/s and has a backlog for longer than the 20 s measured.
Counted from the messages' sent times in the database, it gets at most 55/s in total.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.gateway import TIDINGS, Gateway, free_port
from tests.support import build_world
from tidings.clock import SystemClock
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.messages.models import Message
from tidings.routing.models import Supplier

RATE = 50
WORKERS = 3
WINDOW = 20  # seconds measured
MESSAGES = 1400  # more than the window's worth: the backlog lasts past it


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several `tidings worker` processes share a PostgreSQL database")
    node = Gateway(database_url, tmp_path)
    yield node
    node.stop()


@pytest.fixture
def workers(gateway: Gateway) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    """Three `tidings worker` processes, each serving its own metrics; started by the test
    (`start_workers`), stopped here."""
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    yield started
    for process, _ in started:
        process.terminate()
    for process, _ in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def start_workers(gateway: Gateway, into: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    with (gateway.workdir / "workers.log").open("ab") as log:  # the children keep it open
        for _ in range(WORKERS):
            port = free_port()
            process = subprocess.Popen(
                [TIDINGS, "worker", "--metrics-port", str(port)],
                env=gateway.env,
                cwd=gateway.workdir,
                stdout=log,
                stderr=log,
            )
            into.append((process, port))


def sent_by(port: int) -> float:
    """The messages this worker process handed to a supplier (its own metrics)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tidings_messages_sent_total")
    )


def wait_for_metrics(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("a worker did not come up")


async def sent_times(database_url: str) -> list[datetime]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            times = await session.scalars(
                select(Message.time_sent).where(Message.time_sent.is_not(None))
            )
            return sorted(t for t in times if t is not None)
    finally:
        await engine.dispose()


async def test_three_workers_keep_to_one_supplier_limit(
    gateway: Gateway,
    workers: list[tuple[subprocess.Popen[bytes], int]],
    database_url: str,
) -> None:
    # The world, written in-process (the admin CLI's subprocesses are slow to start).
    engine = create_engine(database_url)
    try:
        sessions = create_sessionmaker(engine)
        world = await build_world(sessions, SystemClock(), balance=Decimal(100))
        async with transaction(sessions) as session:
            supplier = await session.get(Supplier, world.supplier_id)
            assert supplier is not None
            supplier.throughput = RATE
    finally:
        await engine.dispose()
    # The supplier exists before the workers look: each runs a lane for it.
    # The API first: it holds its port before the workers pick theirs for metrics.
    gateway.start(command="api", timeout=90)  # a loaded CI machine starts slowly
    start_workers(gateway, workers)
    deadline = time.monotonic() + 90
    for _, port in workers:
        wait_for_metrics(port, deadline)

    assert gateway.process is not None and gateway.process.poll() is None, "the API stopped"
    headers = {"X-API-KEY": world.live_key}
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=30) as http:
        for part in range(2):
            phones = [
                {"msisdn": f"3809720{part}{i:04d}", "reference": f"r{part}x{i}"}
                for i in range(MESSAGES // 2)
            ]
            answer = (
                await http.post(
                    "/rest/sms/create",
                    json={
                        "destination": "phones",
                        "phones": phones,
                        "originator": "t",
                        "body": "b",
                    },
                )
            ).json()
            assert answer["error"] == "0"

    # Wait for the window to pass, counted from the first message sent.
    deadline = time.monotonic() + 20
    while not (times := await sent_times(database_url)):
        assert time.monotonic() < deadline, "nothing was sent"
        await asyncio.sleep(0.2)
    first = times[0]
    remaining = (
        first + timedelta(seconds=WINDOW + 0.5) - datetime.now(first.tzinfo)
    ).total_seconds()
    await asyncio.sleep(max(0.0, remaining))
    by_worker = [sent_by(port) for _, port in workers]
    times = await sent_times(database_url)

    per_second = [0] * WINDOW
    for moment in times:
        second = int((moment - first).total_seconds())
        if second < WINDOW:
            per_second[second] += 1
    total = sum(per_second)
    print(f"sent per second: {per_second}; by worker: {by_worker}")
    assert len(times) < MESSAGES, "the backlog ran out inside the window"
    # The bound: at most 55/s in total over the 20 s.
    assert total <= 55 * WINDOW, per_second
    # And the limit, not the workers, decided the pace: they kept the supplier busy (a
    # loose bound: on a loaded machine the workers stall now and then).
    assert total >= 0.6 * RATE * WINDOW, per_second
    # Every one of the three processes sent (they shared the one rate).
    assert all(count > 0 for count in by_worker), by_worker
