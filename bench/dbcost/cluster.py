"""A throwaway PostgreSQL cluster for the cost benchmark, and the counters read from it.

Its own cluster, not the shared server on :5432, for two reasons: the WAL position
(`pg_current_wal_lsn()`) is cluster-wide, so on a shared server every other session's writes
would be counted as ours; and `pg_stat_statements` must be in `shared_preload_libraries`,
which takes a server restart. `initdb` runs as the `postgres` user when we are root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.e2e.procs import HOST, free_port

# Statements the observer itself runs are excluded by role: the gateway connects as
# `postgres`, the benchmark's own queries as `observer`.
OBSERVER = "observer"


def _pg_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError("initdb not found (apt-get install postgresql)")
    return Path(candidates[-1]).parent


@dataclass
class Cluster:
    """`initdb` + `pg_ctl start` in `root`, on a free port of 127.0.0.1; `stop()` removes it."""

    root: Path
    port: int = field(default_factory=free_port)
    started: bool = False

    @property
    def datadir(self) -> Path:
        return self.root / "pgdata"

    def _as_owner(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:1])} failed: {done.stderr.strip()[-2000:]}")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            self.root.parent.chmod(0o755)  # the temp dir, so that `postgres` can reach its own
            self.root.chmod(0o755)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        pg_bin = _pg_bin()
        self._as_owner(
            str(pg_bin / "initdb"), "-D", str(self.datadir), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        settings = {
            "port": str(self.port),
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.root),
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.track": "all",
            "pg_stat_statements.max": "10000",
            # As in CI: no autovacuum, so the counters are the gateway's path only.
            "autovacuum": "off",
            # WAL bytes do not depend on fsync; the shared 2-core machine is spared the syncs.
            "fsync": "off",
            "max_connections": "200",
            # No checkpoint inside the run (one is forced at its start): full-page images are
            # then those of the first change of each page, the same in every run.
            "checkpoint_timeout": "1h",
            "max_wal_size": "8GB",
        }
        options = " ".join(f"-c {k}={v}" for k, v in settings.items())
        self._as_owner(
            str(pg_bin / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip
        self.started = True

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@{HOST}:{self.port}/{database}"

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._as_owner(
                    str(_pg_bin() / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"
                )
            self.started = False


async def create_database(cluster: Cluster, name: str) -> None:
    admin = await asyncpg.connect(cluster.url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.execute(f"CREATE ROLE {OBSERVER} LOGIN")
        await admin.execute(f"GRANT pg_read_all_stats, pg_read_all_data TO {OBSERVER}")
    finally:
        await admin.close()
    db = await asyncpg.connect(cluster.url(name))
    try:
        await db.execute("CREATE EXTENSION pg_stat_statements")
    finally:
        await db.close()


@dataclass(frozen=True, slots=True)
class Statement:
    query: str
    calls: int
    rows: int
    wal_bytes: int
    wal_fpi: int


@dataclass(frozen=True, slots=True)
class TableCounts:
    inserted: int
    updated: int
    hot_updated: int
    deleted: int

    def __sub__(self, other: TableCounts) -> TableCounts:
        return TableCounts(
            self.inserted - other.inserted,
            self.updated - other.updated,
            self.hot_updated - other.hot_updated,
            self.deleted - other.deleted,
        )

    @property
    def writes(self) -> int:
        return self.inserted + self.updated + self.deleted


@dataclass(frozen=True, slots=True)
class Snapshot:
    wal_lsn: int
    commits: int
    rollbacks: int
    tables: dict[str, TableCounts]
    statements: dict[int, Statement]


async def snapshot(observer: asyncpg.Connection, database: str) -> Snapshot:
    """The counters now. Backends flush their table and database counters at most once a
    second (PostgreSQL 15), so the caller waits past that before a snapshot that matters."""
    lsn = await observer.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    commits, rollbacks = await observer.fetchrow(
        "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", database
    )
    tables = {
        r["relname"]: TableCounts(
            r["n_tup_ins"], r["n_tup_upd"], r["n_tup_hot_upd"], r["n_tup_del"]
        )
        for r in await observer.fetch(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del"
            " FROM pg_stat_user_tables"
        )
    }
    statements = {
        r["queryid"]: Statement(r["query"], r["calls"], r["rows"], r["wal_bytes"], r["wal_fpi"])
        for r in await observer.fetch(
            "SELECT s.queryid, s.query, s.calls, s.rows, s.wal_bytes::bigint AS wal_bytes,"
            " s.wal_fpi FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid"
            " WHERE d.datname = $1 AND r.rolname = 'postgres' AND s.toplevel",
            database,
        )
    }
    return Snapshot(int(lsn), int(commits), int(rollbacks), tables, statements)


def statement_delta(before: Snapshot, after: Snapshot) -> list[Statement]:
    out = []
    for queryid, now in after.statements.items():
        then = before.statements.get(queryid)
        if then is None:
            out.append(now)
        elif now.calls != then.calls:
            out.append(
                Statement(
                    now.query,
                    now.calls - then.calls,
                    now.rows - then.rows,
                    now.wal_bytes - then.wal_bytes,
                    now.wal_fpi - then.wal_fpi,
                )
            )
    return out
