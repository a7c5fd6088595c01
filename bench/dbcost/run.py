"""What one message costs PostgreSQL, per stage: `make bench-db-cost`.

    python -m bench.dbcost [--messages 2000] [--bulk 100] [--workers 2] [--json FILE] [--top N]

A throwaway cluster (bench/dbcost/cluster.py) with `pg_stat_statements`, a fresh database
seeded through the CLI (a client whose callback URL is a real HTTP receiver on loopback,
format `ketchup`; a UA price; the simulator supplier; a route), `tidings api` and
`--workers` `tidings worker` processes. The messages are sent as bulk creates of `--bulk`
`phones`; each one gets two callbacks (`sent`, `delivered`). The stages run apart in time,
so that each one's counters are its own:

1. accept: only `tidings api` runs while the bulks are posted;
2. submit: the workers start; the simulator holds its reports back (`dlr_delay_ms`), so this
   window ends when every message is `sent` and its `sent` callback answered;
3. receipt: the reports come in; the window ends when every message is final and its second
   callback answered.

Callbacks happen inside windows 2 and 3; their share is the statements that touch the
webhook tables (`pg_stat_statements` per statement: calls, rows, WAL bytes). Commits cannot
be split by statement, so a window's commits include its callbacks' (the table says so).
Row writes are `pg_stat_user_tables` (inserts + updates + deletes), WAL the
`pg_current_wal_lsn()` delta, commits `pg_stat_database.xact_commit` less the benchmark's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench.dbcost.cluster import (
    OBSERVER,
    Cluster,
    Snapshot,
    Statement,
    create_database,
    snapshot,
    statement_delta,
)
from bench.e2e.procs import HOST, Child, free_port, wait_port
from bench.server import TIDINGS, _cli, cli_env

DATABASE = "tidings"
MSISDN_BASE = 380_970_000_000
CALLBACK_TABLES = ("webhook_deliveries", "webhook_attempts")
WRITE_VERBS = ("insert", "update", "delete")
STATS_FLUSH_S = 11.0  # an idle backend flushes its table and commit counters after 10 s


@dataclass
class StageCost:
    name: str
    wal_bytes: float
    commits: float | None  # None: not separable (counted in the window's own stage)
    row_writes: float
    statements: float


@dataclass
class Result:
    messages: int
    stages: list[StageCost]
    total: StageCost
    tables: dict[str, dict[str, float]]
    top: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _is_callback(query: str) -> bool:
    return any(table in query for table in CALLBACK_TABLES)


def _writes(statements: list[Statement]) -> int:
    return sum(s.rows for s in statements if s.query.lstrip().lower().startswith(WRITE_VERBS))


class Observer:
    """The benchmark's own connection (role `observer`), counting its own transactions so
    that they are taken out of the database's commit counter."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.transactions = 0

    async def value(self, sql: str) -> Any:
        self.transactions += 1
        return await self.connection.fetchval(sql)

    async def snapshot(self) -> tuple[Snapshot, int]:
        await asyncio.sleep(STATS_FLUSH_S)
        taken = await snapshot(self.connection, DATABASE)
        self.transactions += 4  # the snapshot's own four queries
        return taken, self.transactions


def seed(url: str, workdir: Path, callback_url: str, dlr_delay_ms: int) -> str:
    env = cli_env(url)
    _cli(env, "db", "upgrade")
    client = json.loads(
        _cli(
            env, "clients", "create", "--name", "bench", "--balance", "100000000",
            "--tariff", "0", "--callback-url", callback_url, "--json",
        )
    )  # fmt: skip
    _cli(env, "clients", "update", str(client["id"]), "--webhook-format", "ketchup", "--json")
    prices = workdir / "prices.csv"
    prices.write_text("type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n", "utf-8")
    _cli(env, "prices", "import", str(prices))
    _cli(
        env, "suppliers", "create", "--name", "sim", "--kind", "simulator",
        "--option", f"dlr_delay_ms={dlr_delay_ms}", "--json",
    )  # fmt: skip
    _cli(env, "routes", "create", "--type", "sms", "--supplier", "sim")
    return str(client["live_key"])


async def _until(what: str, check: Callable[[], Awaitable[bool]], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


def _receiver_callbacks(port: int) -> int:
    answer = httpx.get(f"http://{HOST}:{port}/stats", timeout=10, trust_env=False)
    return int(answer.json()["callbacks"])


async def post_bulks(base_url: str, key: str, messages: int, bulk: int) -> None:
    headers = {"X-API-KEY": key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=120, trust_env=False
    ) as http:
        for start in range(0, messages, bulk):
            phones = [
                {"msisdn": str(MSISDN_BASE + n), "reference": f"c{n}"}
                for n in range(start, min(start + bulk, messages))
            ]
            body = {
                "destination": "phones",
                "phones": phones,
                "originator": "test",
                "body": "test sms",
            }
            answer = await http.post("/rest/sms/create", content=orjson.dumps(body))
            if answer.status_code != 200:
                raise RuntimeError(f"create answered {answer.status_code}: {answer.text[:300]}")


def _stage(
    name: str, messages: int, wal: int, commits: int | None, writes: int, calls: int
) -> StageCost:
    return StageCost(
        name,
        wal / messages,
        None if commits is None else commits / messages,
        writes / messages,
        calls / messages,
    )


def analyse(messages: int, snaps: list[tuple[Snapshot, int]], top: int) -> Result:
    """Stages from four snapshots: before accept, after accept, after submit, after receipt."""
    (s0, o0), (s1, o1), (s2, o2), (s3, o3) = snaps
    windows = [
        ("accept", s0, s1, o1 - o0),
        ("submit", s1, s2, o2 - o1),
        ("receipt", s2, s3, o3 - o2),
    ]
    stages: list[StageCost] = []
    callbacks: list[Statement] = []
    all_statements: list[Statement] = []
    for name, before, after, own in windows:
        statements = statement_delta(before, after)
        all_statements += statements
        ours = [s for s in statements if not _is_callback(s.query)]
        theirs = [s for s in statements if _is_callback(s.query)]
        callbacks += theirs
        table_writes = sum(
            (after.tables[t] - before.tables.get(t, after.tables[t] - after.tables[t])).writes
            for t in after.tables
        )
        stages.append(
            _stage(
                name if not theirs else f"{name} (commits incl. its callbacks)",
                messages,
                after.wal_lsn - before.wal_lsn - sum(s.wal_bytes for s in theirs),
                after.commits - before.commits - own,
                table_writes - _writes(theirs),
                sum(s.calls for s in ours),
            )
        )
    stages.append(
        _stage(
            "callbacks (2 per message)",
            messages,
            sum(s.wal_bytes for s in callbacks),
            None,
            _writes(callbacks),
            sum(s.calls for s in callbacks),
        )
    )
    tables = {}
    for table, now in sorted(s3.tables.items()):
        delta = now - s0.tables.get(table, now - now)
        if delta.writes:
            tables[table] = {
                "inserted": delta.inserted / messages,
                "updated": delta.updated / messages,
                "hot_updated": delta.hot_updated / messages,
                "deleted": delta.deleted / messages,
            }
    total = _stage(
        "total",
        messages,
        s3.wal_lsn - s0.wal_lsn,
        s3.commits - s0.commits - (o3 - o0),
        sum((now - s0.tables.get(t, now - now)).writes for t, now in s3.tables.items()),
        sum(s.calls for s in all_statements),
    )
    merged: dict[str, Statement] = {}
    for s in all_statements:
        seen = merged.get(s.query)
        merged[s.query] = s if seen is None else Statement(
            s.query, s.calls + seen.calls, s.rows + seen.rows,
            s.wal_bytes + seen.wal_bytes, s.wal_fpi + seen.wal_fpi,
        )  # fmt: skip
    heaviest = sorted(merged.values(), key=lambda s: (s.wal_bytes, s.calls), reverse=True)[:top]
    top_rows = [
        {
            "query": " ".join(s.query.split())[:110],
            "calls": s.calls / messages,
            "rows": s.rows / messages,
            "wal_bytes": s.wal_bytes / messages,
            "fpi": s.wal_fpi / messages,
        }
        for s in heaviest
    ]
    return Result(messages, stages, total, tables, top_rows)


async def measure(args: argparse.Namespace, workdir: Path) -> Result:
    cluster = Cluster(workdir / "pg")
    children: list[Child] = []
    try:
        cluster.start()
        await create_database(cluster, DATABASE)
        url = cluster.url(DATABASE)
        receiver_port = free_port()
        receiver = Child(
            "receiver",
            [sys.executable, "-m", "bench.e2e.receiver", "--port", str(receiver_port)],
            workdir / "receiver.log",
        ).start()
        children.append(receiver)
        wait_port(receiver_port, 30, [receiver])
        key = seed(url, workdir, f"http://{HOST}:{receiver_port}/cb", args.dlr_delay_ms)
        api_port = free_port()
        env = cli_env(url, api_port)
        api = Child("api", [str(TIDINGS), "api"], workdir / "api.log", env=env).start()
        children.append(api)
        wait_port(api_port, 90, [api])
        admin = await asyncpg.connect(cluster.url("postgres"))
        await admin.execute("CHECKPOINT")  # every run starts from the same point
        await admin.close()
        observer = Observer(await asyncpg.connect(cluster.url(DATABASE, OBSERVER)))
        n = args.messages

        async def count(sql: str) -> int:
            return int(await observer.value(sql))

        snaps = [await observer.snapshot()]
        await post_bulks(f"http://{HOST}:{api_port}", key, n, args.bulk)
        snaps.append(await observer.snapshot())
        for number in range(1, args.workers + 1):
            worker = Child(
                f"worker{number}",
                [str(TIDINGS), "worker"],
                workdir / f"worker{number}.log",
                env=env,
            )
            children.append(worker.start())

        async def submitted() -> bool:
            return (
                await count("SELECT count(*) FROM messages WHERE time_sent IS NOT NULL") >= n
                and _receiver_callbacks(receiver_port) >= n
                and await count("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")
                == 0
            )

        await _until("every message sent and its first callback", submitted, args.timeout)
        early = await count("SELECT count(*) FROM receipts")
        snaps.append(await observer.snapshot())

        async def finished() -> bool:
            return (
                await count("SELECT count(*) FROM messages WHERE time_dr IS NOT NULL") >= n
                and _receiver_callbacks(receiver_port) >= 2 * n
                and await count("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")
                == 0
            )

        await _until("every message final and its second callback", finished, args.timeout)
        snaps.append(await observer.snapshot())
        callbacks = _receiver_callbacks(receiver_port)
        await observer.connection.close()
        result = analyse(n, snaps, args.top)
        if early:
            result.notes.append(
                f"{early} receipts arrived inside the submit window: raise --dlr-delay-ms"
            )
        if callbacks != 2 * n:
            result.notes.append(f"the receiver got {callbacks} callbacks, not {2 * n}")
        return result
    finally:
        for child in reversed(children):
            child.stop()
        cluster.stop()


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render(result: Result) -> str:
    lines = [
        f"Per message ({result.messages:,} messages, PostgreSQL):",
        "",
        f"| {'stage':<44} | {'WAL bytes':>10} | {'commits':>7} |"
        f" {'row writes':>10} | {'statements':>10} |",
        f"|{'-' * 46}|{'-' * 12}:|{'-' * 8}:|{'-' * 11}:|{'-' * 11}:|",
    ]
    for stage in [*result.stages, result.total]:
        lines.append(
            f"| {stage.name:<44} | {_fmt(stage.wal_bytes, 0):>10} | {_fmt(stage.commits):>7} |"
            f" {_fmt(stage.row_writes):>10} | {_fmt(stage.statements):>10} |"
        )
    lines += ["", "Row writes per message by table (inserted / updated (HOT) / deleted):"]
    for table, c in result.tables.items():
        lines.append(
            f"  {table:<24} {c['inserted']:6.2f} / {c['updated']:6.2f}"
            f" ({c['hot_updated']:.2f}) / {c['deleted']:6.2f}"
        )
    if result.top:
        lines += [
            "",
            "Heaviest statements (per message: calls, rows, WAL bytes, full-page images):",
        ]
        for s in result.top:
            lines.append(
                f"  {s['calls']:5.2f} {s['rows']:5.2f} {s['wal_bytes']:7.0f}"
                f" {s['fpi']:5.2f}  {s['query']}"
            )
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--bulk", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dlr-delay-ms", type=int, default=45000, help="the simulator's report delay"
    )
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--top", type=int, default=15, help="heaviest statements to list")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tidings-dbcost-"))
    try:
        result = asyncio.run(measure(args, workdir))
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}", file=sys.stderr)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2), "utf-8")


if __name__ == "__main__":
    main()
