"""`python -m bench.exports`: time and peak RSS to export a million messages, per format.

A fresh SQLite database (or PostgreSQL, with --database-url: an empty database, migrated
here) gets one client and N messages, written straight into the table with the driver's
executemany (SQLite) or COPY (PostgreSQL) in batches: the API is not what is measured.
Then, for each format (json, xml, csv, and "all": the three in one pass, as the worker
builds them), a fresh process builds the export with `build_files` and reports its time,
its peak RSS (getrusage) and its RSS before the build (interpreter and imports), so that
each number stands alone. Target on SQLite: under 60 s and under 200 MB per format.

    .venv/bin/python -m bench.exports                     # 1,000,000 rows, SQLite
    .venv/bin/python -m bench.exports --rows 100000 --check
    .venv/bin/python -m bench.exports --database-url postgresql://postgres@127.0.0.1/bench
    .venv/bin/python -m bench.exports --storage database   # files into the database

The messages: 90% Ukrainian numbers over eight operator prefixes, 10% Swedish, about one
number in five repeated; statuses, originators, sources and bodies (some Cyrillic) vary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 200.0
FORMATS = ("json", "xml", "csv", "all")
START = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 50_000
IN_DATABASE = ":database:"  # the child's "directory" when the files go into the database

COLUMNS = (
    "id",
    "client_id",
    "task_id",
    "channel",
    "source",
    "msisdn",
    "country",
    "reference",
    "originator",
    "body",
    "encoding",
    "parts",
    "tariff",
    "price",
    "currency",
    "status",
    "status_detail",
    "callback_url",
    "supplier_id",
    "send_at",
    "expires_at",
    "time_in",
    "time_sent",
    "time_dr",
)
_UA = ("38067", "38050", "38093", "38097", "38066", "38063", "38073", "38099")
_STATUSES = ("delivered",) * 14 + ("undelivered", "expired", "sent", "queued", "rejected", "failed")
_FINAL = {"delivered", "undelivered", "expired", "rejected", "failed"}
_BODIES = (
    "Your code is {n}. Do not share it with anyone.",
    "Ваше замовлення №{n} відправлено. Дякуємо!",
    "Sale! -20% on everything until Sunday, use code SPRING{n}",
    'Reminder: appointment #{n} tomorrow at 10:00 <clinic> & "lab"',
)


def message_rows(
    client_id: int,
    first_id: int,
    count: int,
    *,
    sqlite: bool,
    start: datetime = START,
    seed: int = 5,
) -> Iterator[tuple[Any, ...]]:
    """`count` message rows in COLUMNS order, raw (money in micro-units; on SQLite, times as
    the stored ISO text), one every 10 ms from `start`."""
    rng = random.Random(seed)
    recent: list[str] = []

    def when(moment: datetime) -> Any:
        return (
            moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            if sqlite
            else moment
        )

    for index in range(count):
        if recent and rng.random() < 0.2:
            msisdn, country = rng.choice(recent), None
        elif rng.random() < 0.9:
            msisdn, country = f"{rng.choice(_UA)}{rng.randrange(10**7):07d}", "UA"
        else:
            msisdn, country = f"4670{rng.randrange(10**7):07d}", "SE"
        if country is None:
            country = "SE" if msisdn.startswith("46") else "UA"
        if len(recent) < 1000:
            recent.append(msisdn)
        else:
            recent[index % 1000] = msisdn
        status = rng.choice(_STATUSES)
        time_in = start + timedelta(milliseconds=10 * index)
        sent = status not in ("queued", "rejected", "failed")
        yield (
            first_id + index,
            client_id,
            None,
            "sms",
            "api" if index % 10 else "smpp",
            msisdn,
            country,
            f"b{first_id + index}",
            ("Shop", "Bank", "Clinic")[index % 3],
            rng.choice(_BODIES).format(n=index),
            "gsm7",
            1,
            0,
            20_000 if country == "UA" else 45_000,
            "EUR",
            status,
            None,
            None,
            None,
            None,
            when(time_in + timedelta(hours=72)),
            when(time_in),
            when(time_in + timedelta(seconds=1)) if sent else None,
            when(time_in + timedelta(seconds=6)) if status in _FINAL and sent else None,
        )


def _batches(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def seed_messages(
    database_url: str, client_id: int, count: int, *, start: datetime = START
) -> None:
    """Insert `count` messages for a client, fast: not through the API, no ORM."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        await asyncio.to_thread(_seed_sqlite, url.database, client_id, count, start)
        return
    import asyncpg

    connection = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
    )
    try:
        first = int(await connection.fetchval("SELECT coalesce(max(id), 0) FROM messages")) + 1
        rows = message_rows(client_id, first, count, sqlite=False, start=start)
        for batch in _batches(rows, BATCH):
            await connection.copy_records_to_table("messages", records=batch, columns=COLUMNS)
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('messages', 'id'), max(id)) FROM messages"
        )
    finally:
        await connection.close()


def _seed_sqlite(path: str, client_id: int, count: int, start: datetime) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout=10000")
        first = connection.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0] + 1
        insert = (
            f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        rows = message_rows(client_id, first, count, sqlite=True, start=start)
        for batch in _batches(rows, BATCH):
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(insert, batch)
            connection.execute("COMMIT")
    finally:
        connection.close()


# --- One build, in its own process -----------------------------------------------------------


def _rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage: a process started by fork and exec
    inherits its parent's ru_maxrss, which would hide a smaller child behind the parent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _child(database_url: str, client_id: int, fmt: str, directory: str, batch: int) -> None:
    from tidings.clock import SystemClock
    from tidings.db.engine import create_engine, create_sessionmaker
    from tidings.exports.dbstorage import DatabaseStorage
    from tidings.exports.filters import ExportFilter
    from tidings.exports.formats import ALL_FORMATS
    from tidings.exports.repository import create_reader_engine
    from tidings.exports.service import build_files
    from tidings.exports.storage import ExportStorage, LocalStorage
    from tidings.numbering import CountryTable

    countries = CountryTable.load()
    spec = ExportFilter(
        time_in_from=START, time_in_until=START + timedelta(days=3650), message_type="sms"
    )
    reader = create_reader_engine(database_url)
    engine = create_engine(database_url)
    storage: ExportStorage = (
        DatabaseStorage(create_sessionmaker(engine), SystemClock())
        if directory == IN_DATABASE
        else LocalStorage(Path(directory))
    )
    baseline = _rss_mb()
    started = time.perf_counter()
    try:
        result = await build_files(
            reader,
            storage,
            countries,
            client_id=client_id,
            key="0" * 32,
            spec=spec,
            batch_size=batch,
            formats=ALL_FORMATS if fmt == "all" else (fmt,),
        )
    finally:
        await reader.dispose()
    seconds = time.perf_counter() - started
    await engine.dispose()
    print(
        json.dumps(
            {
                "format": fmt,
                "rows": result.row_count,
                "seconds": seconds,
                "bytes": sum(result.sizes.values()),
                "peak_rss_mb": _rss_mb(),
                "baseline_rss_mb": baseline,
            }
        )
    )


def run_child(
    database_url: str, client_id: int, fmt: str, directory: Path | str, batch: int
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.exports",
            "--child",
            database_url,
            str(client_id),
            fmt,
            str(directory),
            str(batch),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- The bench ---------------------------------------------------------------------------------


async def prepare(database_url: str, rows: int) -> tuple[int, float]:
    """Migrate, create the client, seed; the client id and the seconds seeding took."""
    from tidings.accounts.service import create_client
    from tidings.clock import SystemClock
    from tidings.db.engine import create_engine, create_sessionmaker, transaction
    from tidings.db.migrate import upgrade

    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            created = await create_client(session, SystemClock(), name=f"bench{time.time_ns()}")
    finally:
        await engine.dispose()
    started = time.perf_counter()
    await seed_messages(database_url, created.client.id, rows)
    return created.client.id, time.perf_counter() - started


def report(
    results: Sequence[dict[str, Any]], rows: int, seed_seconds: float, database: str
) -> None:
    print(f"\nexport bench: {rows:,} messages on {database} (seeded in {seed_seconds:.1f} s)")
    header = ("format", "rows", "seconds", "rows/s", "file MB", "peak RSS MB", "before MB")
    print("{:<6} {:>10} {:>8} {:>9} {:>8} {:>12} {:>10}".format(*header))
    for r in results:
        rate = r["rows"] / r["seconds"]
        print(
            f"{r['format']:<6} {r['rows']:>10,} {r['seconds']:>8.1f} {rate:>9,.0f} "
            f"{r['bytes'] / 2**20:>8.0f} {r['peak_rss_mb']:>12.0f} {r['baseline_rss_mb']:>10.0f}"
        )
    print(f"target: under {TARGET_SECONDS:.0f} s and {TARGET_RSS_MB:.0f} MB per format")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        url, client, fmt, directory, batch = args[1:6]
        asyncio.run(_child(url, int(client), fmt, directory, int(batch)))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.exports", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help="comma-separated: json,xml,csv,all"
    )
    parser.add_argument(
        "--batch-size", type=int, default=2000, help="rows per fetch (TIDINGS_EXPORT_BATCH_SIZE)"
    )
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: a temp SQLite)"
    )
    parser.add_argument(
        "--storage",
        choices=("directory", "database"),
        default="directory",
        help="where the files go (TIDINGS_EXPORT_STORAGE)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--json", dest="json_file", help="save the results here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    options = parser.parse_args(args)
    formats = [f for f in options.formats.split(",") if f]
    if unknown := set(formats) - set(FORMATS):
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")

    workdir = Path(tempfile.mkdtemp(prefix="tidings-export-bench-"))
    database_url = options.database_url or f"sqlite:///{workdir / 'bench.db'}"
    database = "PostgreSQL" if options.database_url else "SQLite"
    try:
        client_id, seed_seconds = asyncio.run(prepare(database_url, options.rows))
        results = []
        for fmt in formats:
            out = workdir / f"out-{fmt}"
            target = IN_DATABASE if options.storage == "database" else out
            results.append(run_child(database_url, client_id, fmt, target, options.batch_size))
            print(json.dumps(results[-1]), flush=True)
            if not options.keep:
                shutil.rmtree(out, ignore_errors=True)
        report(results, options.rows, seed_seconds, database)
        if options.json_file:
            Path(options.json_file).write_text(json.dumps(results, indent=2))
        missed = [
            r["format"]
            for r in results
            if r["seconds"] > TARGET_SECONDS or r["peak_rss_mb"] > TARGET_RSS_MB
        ]
        if missed:
            print(f"missed the target: {', '.join(missed)}")
        return 1 if options.check and missed else 0
    finally:
        if options.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
