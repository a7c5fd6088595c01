"""What one accept round costs, alone: `python -m bench.accept_round [--database postgres]`.

The HTTP API stores single-message requests in rounds (messages/writer.py, `AcceptQueue`):
with eight client connections a round carries about four. This drives the real queue with
`--per-round` requests at a time, `--rounds` times, on a fresh seeded database, and prints
the CPU per message of this process (SQLAlchemy, the driver, the kernel's side of the socket)
and, on PostgreSQL, of its backends: the cost the end-to-end bench's API process pays per
message for storage, without the HTTP stack and without the noise of the other processes.

Both numbers move with the machine's speed (docs/performance.md, "A noisy machine"): compare
builds within one run of the same machine minutes apart, several times.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import psutil

from bench.server import BenchDatabase, make_database, seed, workdir
from tidings.accounts.service import Caller, KeyKind
from tidings.clock import SystemClock
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest, prepare_sms
from tidings.messages.catalog import load_catalog
from tidings.messages.writer import AcceptQueue


def backends_of(database: BenchDatabase) -> list[psutil.Process]:
    """The PostgreSQL backends serving `database` (none on SQLite)."""
    name = getattr(database, "name", None)
    if name is None:
        return []
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if cmdline.startswith("postgres:") and f" {name} " in cmdline:
            found.append(process)
    return found


def cpu_of(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def run(database: BenchDatabase, root: Path, rounds: int, per_round: int) -> None:
    seeded = seed(database.url, root)
    engine = create_engine(database.url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    async with sessions() as session:
        catalog = await load_catalog(session)
    caller = Caller(client_id=seeded.client_id, key_kind=KeyKind.LIVE, tariff=0)
    queue = AcceptQueue(sessions, clock)
    queue.start()
    serial = 0

    async def one_round() -> None:
        nonlocal serial
        batch = []
        for _ in range(per_round):
            serial += 1
            item = SmsItem(f"380975{serial % 1_000_000:06d}", f"r{serial}", "bench", "hello")
            batch.append(prepare_sms(catalog, caller, SmsRequest("phone", [item]), Limits()))
        await asyncio.gather(*(queue.submit(p) for p in batch))

    try:
        for _ in range(20):  # warm up: connections, prepared statements, caches
            await one_round()
        backends = backends_of(database)
        client_start, backend_start = time.process_time(), cpu_of(backends)
        wall_start = time.perf_counter()
        for _ in range(rounds):
            await one_round()
        wall = time.perf_counter() - wall_start
        client = time.process_time() - client_start
        backend = cpu_of(backends) - backend_start
    finally:
        await queue.stop()
        await engine.dispose()
    messages = rounds * per_round
    print(
        f"{database.kind}: {messages} messages in rounds of {per_round}: "
        f"client {client / messages * 1e6:.0f} µs/message, "
        f"database {backend / messages * 1e6:.0f} µs/message, "
        f"wall {wall / rounds * 1e3:.2f} ms/round"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accept_round", description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--per-round", type=int, default=4)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 100_000 or not 1 <= args.per_round <= 1000:
        parser.error("--rounds is 1..100000 and --per-round 1..1000")
    with workdir() as root:
        database = make_database(args.database, root)
        database.create()
        try:
            asyncio.run(run(database, root, args.rounds, args.per_round))
        finally:
            database.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
