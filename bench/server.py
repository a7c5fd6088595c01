"""A fresh database, a seeded gateway subprocess, and what the process costs (RSS, CPU)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.e2e.procs import free_port

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TIDINGS = VENV_BIN / "tidings"
PY_SPY = VENV_BIN / "py-spy"
HOST = "127.0.0.1"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

STATUS_QUERY = "SELECT status, count(*) FROM messages GROUP BY status"
ACTIVITY_QUERY = (
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU'), "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), 70) FROM pg_stat_activity "
    "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
)


# --- Databases -----------------------------------------------------------------------


class BenchDatabase:
    """One throw-away database; `url` is what TIDINGS_DATABASE_URL gets."""

    kind: str
    url: str

    def create(self) -> None:
        raise NotImplementedError

    def clone(self, workdir: Path) -> BenchDatabase:
        raise NotImplementedError

    def status_counts(self) -> dict[str, int]:
        """Messages per status, read beside the server (never through its API)."""
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class SqliteDatabase(BenchDatabase):
    kind = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "bench.db"
        self.url = f"sqlite:///{self.path}"
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def clone(self, workdir: Path) -> SqliteDatabase:
        """A copy of this (seeded, closed) database: seeding through the CLI takes seconds."""
        copy = SqliteDatabase(workdir)
        copy.create()
        for suffix in ("", "-wal"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{copy.path}{suffix}")
        return copy

    def status_counts(self) -> dict[str, int]:
        with self._lock:
            if self._reader is None:
                # Read-only, autocommit: each count is its own short WAL snapshot, so the
                # reader never holds back the server's checkpoints.
                self._reader = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    timeout=30,
                    check_same_thread=False,
                )
            return dict(self._reader.execute(STATUS_QUERY).fetchall())

    def drop(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()


def postgres_admin(sql: str) -> None:
    """Run one statement as the bench's PostgreSQL superuser."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


class PostgresDatabase(BenchDatabase):
    kind = "postgres"
    _serial = 0

    def __init__(self, workdir: Path) -> None:
        PostgresDatabase._serial += 1
        self.name = f"tidings_bench_{os.getpid()}_{PostgresDatabase._serial}"
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"
        self._reader: Any = None
        self._lock = threading.Lock()

    def _admin(self, sql: str) -> None:
        postgres_admin(sql)

    def create(self, template: str | None = None) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        self._admin(f'CREATE DATABASE "{self.name}"{suffix}')

    def clone(self, workdir: Path) -> PostgresDatabase:
        copy = PostgresDatabase(workdir)
        copy.create(template=self.name)
        return copy

    def status_counts(self) -> dict[str, int]:
        # psql keeps the bench free of a second event loop in the polling thread.
        with self._lock:
            out = subprocess.run(
                ["psql", "-X", "-q", "-A", "-t", "-F", "\t", self.url, "-c", STATUS_QUERY],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        counts: dict[str, int] = {}
        for line in out.splitlines():
            if "\t" in line:
                status, count = line.split("\t")
                counts[status] = int(count)
        return counts

    def activity(self) -> list[tuple[str, str]]:
        """What the server's active backends do now: (wait, statement start) per backend."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-F", "\t", self.url, "-c", ACTIVITY_QUERY],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return [tuple(line.split("\t", 1)) for line in out.splitlines() if "\t" in line]  # type: ignore[misc]

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def make_database(kind: str, workdir: Path) -> BenchDatabase:
    if kind == "sqlite":
        return SqliteDatabase(workdir)
    if kind == "postgres":
        return PostgresDatabase(workdir)
    raise ValueError(f"unknown database {kind!r}")


# --- Seeding through the CLI -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seeded:
    client_id: int
    live_key: str


def cli_env(database_url: str, port: int = 8000) -> dict[str, str]:
    # The bench's own settings only; TIDINGS_PROCESSES passes through (`serve --processes`).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TIDINGS_") or k == "TIDINGS_PROCESSES"
    }
    env.update(
        TIDINGS_DATABASE_URL=database_url,
        TIDINGS_HTTP_HOST=HOST,
        TIDINGS_HTTP_PORT=str(port),
        TIDINGS_LOG_LEVEL="WARNING",
    )
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(TIDINGS), *args], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"tidings {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


BALANCE_ARGS = ("--balance", "1000000", "--tariff", "0")


def seed(database_url: str, workdir: Path) -> Seeded:
    """Schema, a rich client on tariff 0, a UA price, a zero-latency simulator, a route."""
    env = cli_env(database_url)
    _cli(env, "db", "upgrade")
    client = json.loads(_cli(env, "clients", "create", "--name", "bench", *BALANCE_ARGS, "--json"))
    prices = workdir / "prices.csv"
    prices.write_text("type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n", "utf-8")
    _cli(env, "prices", "import", str(prices))
    _cli(
        env,
        "suppliers",
        "create",
        "--name",
        "sim",
        "--kind",
        "simulator",
        "--option",
        "dlr_delay_ms=0",
        "--json",
    )
    _cli(env, "routes", "create", "--type", "sms", "--supplier", "sim")
    return Seeded(client_id=int(client["id"]), live_key=str(client["live_key"]))


# --- The server process ----------------------------------------------------------------


@dataclass(slots=True)
class ProcessStats:
    """Sampled every `interval` seconds from a background thread."""

    peak_rss: int = 0
    samples: int = 0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    wall_start: float = 0.0
    wall_end: float = 0.0

    @property
    def cpu_share(self) -> float:
        """Server CPU seconds per wall second (1.0 = one core busy)."""
        wall = self.wall_end - self.wall_start
        return (self.cpu_end - self.cpu_start) / wall if wall > 0 else 0.0


def tree_cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of a process and its living children: `tidings serve --processes N` is a
    parent that only supervises, and its children do the work."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += float(times.user + times.system)
    return total


def tree_rss(process: psutil.Process) -> int:
    total = 0
    with contextlib.suppress(psutil.Error):
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += member.memory_info().rss
    return total


class ResourceSampler:
    def __init__(self, process: psutil.Process, interval: float = 0.2) -> None:
        self.process = process
        self.interval = interval
        self.stats = ProcessStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _cpu(self) -> float:
        return tree_cpu_seconds(self.process) or self.stats.cpu_end

    def _sample(self) -> None:
        rss = tree_rss(self.process)
        if rss:
            self.stats.peak_rss = max(self.stats.peak_rss, rss)
            self.stats.samples += 1

    def _run(self) -> None:
        # Bounded: stops when asked, or after a day at the very most.
        deadline = time.monotonic() + 86_400
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            self._sample()

    def start(self) -> None:
        self._sample()
        self.stats.cpu_start = self._cpu()
        self.stats.wall_start = time.monotonic()
        self._thread.start()

    def stop(self) -> ProcessStats:
        self.stats.cpu_end = self._cpu()
        self.stats.wall_end = time.monotonic()
        self._sample()
        self._stop.set()
        self._thread.join(timeout=5)
        return self.stats


@dataclass
class Server:
    """`tidings serve` as a subprocess of its own session (so ^C reaches only the bench)."""

    database_url: str
    workdir: Path
    mode: str = "serve"  # or "api": no delivery workers
    query_stats: Path | None = None  # run under bench.instrumented, counting statements
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. TIDINGS_METRICS
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None
    process: psutil.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self) -> None:
        env = cli_env(self.database_url, self.port)
        env.update(self.extra_env)
        command = [str(TIDINGS), self.mode]
        if self.query_stats is not None:
            command = [sys.executable, "-m", "bench.instrumented", self.mode]
            env["BENCH_QUERY_STATS"] = str(self.query_stats)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.process = psutil.Process(self.popen.pid)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=5, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.popen is not None and self.popen.poll() is not None:
                    raise RuntimeError(f"the server exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/health").status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"the server was not healthy in {timeout:.0f} s:\n{self.log_tail()}")

    def query_stats_window(self, opening: bool) -> None:
        """Open (clear the counts) or close (write them) the statement-counting window."""
        if self.query_stats is None or self.popen is None:
            return
        if opening:
            self.popen.send_signal(signal.SIGUSR1)
            time.sleep(0.3)
            return
        self.query_stats.unlink(missing_ok=True)
        self.popen.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not self.query_stats.exists():
            time.sleep(0.1)
        time.sleep(0.2)  # let the write finish

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text("utf-8", "replace")[-chars:]
        return ""

    def stop(self) -> None:
        """SIGINT (graceful), then SIGKILL, by pid: only the process this object started."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.popen = None


class Profiler:
    """`py-spy record --pid` over one measuring window (not start-up, not warm-up)."""

    def __init__(self, pid: int, path: Path, rate: int = 250) -> None:
        self.pid = pid
        self.path = path
        self.rate = rate
        self.popen: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.seconds = 0.0

    def start(self, max_seconds: float) -> None:
        if not PY_SPY.exists():
            raise RuntimeError(f"--profile needs py-spy: {VENV_BIN}/pip install py-spy")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.popen = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(self.pid),
                "--format",
                "raw",
                "--rate",
                str(self.rate),
                "--threads",
                "--subprocesses",  # `tidings serve --processes N`: the children do the work
                "--duration",
                str(int(max_seconds) + 5),
                "-o",
                str(self.path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started = time.monotonic()
        time.sleep(0.3)  # py-spy attaches

    def stop(self) -> None:
        if self.popen is None:
            return
        self.seconds = time.monotonic() - self.started
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
        try:
            _, err = self.popen.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            _, err = self.popen.communicate(timeout=10)
        if not self.path.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
        self.popen = None


@contextlib.contextmanager
def workdir(keep: bool = False) -> Any:
    path = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
