"""Migration 0017 on a database with history: how long moving it into weekly partitions
takes, and what a prune of the expired weeks costs (docs/architecture.md, "Partitions and
retention").

    .venv/bin/python -m bench.partitions                 # 1,000,000 messages
    .venv/bin/python -m bench.partitions --rows 50000

A database of its own on BENCH_PG_ADMIN_URL's server (postgresql://postgres@127.0.0.1:5432/
postgres by default), migrated to 0013 (before partitions), filled with `--rows` messages
spread over five weeks before this one (ids growing with time, every tenth still awaiting
its report), one status event each and a receipt for every seventh; then `alembic upgrade`
to head is timed, with the WAL it wrote, and a prune of the weeks past 14 days of retention
(the count of each week, which takes no lock, apart from what runs under the lock).
The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.migrate import upgrade
from tidings.db.partitions import PARENT, count_rows, drop_week, partitions, week_of
from tidings.retention.service import PruneReport

ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WEEKS = 5
FILL = [
    "INSERT INTO clients (id, name, balance, tariff, blocked, created_at, webhook_format,"
    " retry_schedule, smpp_max_binds) VALUES (1, 'acme', 0, 0, false, now(), 'ketchup',"
    " 'ketchup', 2)",
    "INSERT INTO suppliers (id, name, kind, options, enabled, created_at)"
    " VALUES (1, 'sim', 'simulator', '{}', true, now())",
    "INSERT INTO tasks (id, client_id, destination, validity_hours, total_price, currency,"
    " created_at) VALUES (1, 1, 'phones', 72, 0, 'EUR', now())",
    "SELECT setval('tasks_id_seq', 1)",
    # Weeks of messages before this one, ids growing with time; every tenth still waiting
    # for its report.
    "INSERT INTO messages (client_id, task_id, channel, source, msisdn, country, reference,"
    " originator, body, encoding, parts, tariff, price, currency, status, supplier_id,"
    " supplier_message_id, expires_at, time_in)"
    " SELECT 1, CASE WHEN i % 100 = 0 THEN 1 END, 'sms', 'api',"
    " '38050' || lpad(i::text, 7, '0'), 'UA', 'ref-' || i, 'Tidings', 'hello', 'gsm7', 1, 0,"
    " 20000, 'EUR', CASE WHEN i % 10 = 0 THEN 'sent' ELSE 'delivered' END, 1, 'sm-' || i,"
    " :start + (i::bigint * :span / :rows) * interval '1 second' + interval '3 days',"
    " :start + (i::bigint * :span / :rows) * interval '1 second'"
    " FROM generate_series(1, :rows) AS i",
    "INSERT INTO message_events (message_id, status, at) SELECT id, status, time_in FROM messages",
    "INSERT INTO receipts (supplier_id, supplier_message_id, status, received_at, message_id)"
    " SELECT 1, supplier_message_id, 'delivered', time_in, id FROM messages"
    " WHERE status = 'delivered' AND id % 7 = 0",
]


def this_week() -> datetime:
    now = datetime.fromtimestamp(time.time(), UTC)
    return datetime.combine(week_of(now), datetime.min.time(), UTC)


async def fill_history(url: str, rows: int, weeks: int = WEEKS) -> datetime:
    """Migrate to 0013 (before partitions) and fill `weeks` of history before this week;
    the start of this week."""
    await upgrade(url, "0013_supplier_rate_buckets")
    week = this_week()
    start = week - timedelta(weeks=weeks)
    connection = await asyncpg.connect(url)
    try:
        for sql in FILL:
            await connection.execute(
                sql.replace(":start", f"timestamptz '{start.isoformat()}'")
                .replace(":span", str(int((week - start).total_seconds()) - 1))
                .replace(":rows", str(rows))
            )
    finally:
        await connection.close()
    return week


async def _fetch(url: str, sql: str) -> Any:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def run(rows: int) -> dict[str, Any]:
    name = f"tidings_bench_partitions_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(ADMIN)
    await server.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN.rpartition('/')[0]}/{name}"
    try:
        began = time.perf_counter()
        week = await fill_history(url, rows)
        await server.execute("CHECKPOINT")
        filled = time.perf_counter() - began
        wal = "SELECT pg_current_wal_lsn()::text"
        before = await _fetch(url, wal)
        began = time.perf_counter()
        await upgrade(url)
        migrated = time.perf_counter() - began
        after = await _fetch(url, wal)
        wal_bytes = await _fetch(url, f"SELECT pg_wal_lsn_diff('{after}', '{before}')::bigint")
        engine = create_engine(url)
        try:
            sessions = create_sessionmaker(engine)
            # The prune's steps one by one, to tell the counting (no lock) from the part
            # that holds the tables' lock (detach, open messages copied back, drop).
            cutoff = week + timedelta(days=1) - timedelta(days=14)
            async with sessions() as session:
                expired = [
                    p
                    for p in await partitions(session, PARENT)
                    if p.ends_at is not None and p.ends_at <= cutoff
                ]
            counting = locked = 0.0
            dropped = []
            for partition in expired:
                began = time.perf_counter()
                async with sessions() as session:
                    counted = await count_rows(session, partition)
                counting += time.perf_counter() - began
                began = time.perf_counter()
                async with transaction(sessions) as session:
                    dropped.append(await drop_week(session, partition, counted))
                locked += time.perf_counter() - began
            report = PruneReport(cutoff, dropped)
        finally:
            await engine.dispose()
        return {
            "messages": rows,
            "events": rows,
            "fill_seconds": round(filled, 1),
            "migrate_seconds": round(migrated, 1),
            "migrate_wal_mb": round(int(wal_bytes) / 2**20, 1),
            "prune_count_seconds": round(counting, 2),
            "prune_locked_seconds": round(locked, 2),
            "pruned": report.as_json(),
        }
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    result = asyncio.run(run(parser.parse_args().rows))
    pruned = result.pop("pruned")
    for key, value in result.items():
        print(f"{key:>20}: {value}")
    print(
        f"{'pruned':>20}: {pruned['messages_removed']} messages in "
        f"{len(pruned['dropped'])} weeks, {pruned['messages_kept_open']} kept open"
    )


if __name__ == "__main__":
    main()
