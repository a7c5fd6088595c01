"""Tidings as the gateway under test: seeded through its CLI, run as `serve` or `api` + `worker`.

The seed (once per run, then copied for each round): the schema, a client with a big balance
on tariff 0 whose callback URL is the receiver (webhook format `ketchup`), a UA price, an
SMPP supplier on the simulator (one transceiver bind, window 10) and a route to it.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.e2e.procs import HOST, Child, free_port, wait_port
from bench.server import TIDINGS, BenchDatabase, _cli, cli_env

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"


@dataclass(frozen=True, slots=True)
class TidingsSeed:
    client_id: int
    live_key: str


def seed(
    database_url: str, workdir: Path, smsc_port: int, callback_url: str, window: int = 10
) -> TidingsSeed:
    env = cli_env(database_url)
    _cli(env, "db", "upgrade")
    client = json.loads(
        _cli(
            env,
            "clients",
            "create",
            "--name",
            "bench",
            "--balance",
            "100000000",
            "--tariff",
            "0",
            "--callback-url",
            callback_url,
            "--json",
        )
    )
    client_id = int(client["id"])
    _cli(env, "clients", "update", str(client_id), "--webhook-format", "ketchup", "--json")
    prices = workdir / "prices.csv"
    prices.write_text(PRICES, "utf-8")
    _cli(env, "prices", "import", str(prices))
    options = {
        "host": HOST,
        "port": smsc_port,
        "system_id": "tidings",
        "password": "secret",
        "bind_mode": "transceiver",
        "binds": 1,
        "window": window,
    }
    option_args = [arg for k, v in options.items() for arg in ("--option", f"{k}={v}")]
    _cli(env, "suppliers", "create", "--name", "smsc", "--kind", "smpp", *option_args, "--json")
    _cli(env, "routes", "create", "--type", "sms", "--supplier", "smsc")
    return TidingsSeed(client_id=client_id, live_key=str(client["live_key"]))


@dataclass
class Tidings:
    """`tidings serve` (`split=False`) or `tidings api` + `tidings worker` on one database."""

    database: BenchDatabase
    workdir: Path
    split: bool = False
    workers: int = 1  # `tidings worker` processes beside the API when split
    serve_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    # With a folder, each process runs under bench.instrumented and counts its statements.
    query_stats: Path | None = None
    port: int = field(default_factory=free_port)
    children: list[Child] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _env(self) -> dict[str, str]:
        env = cli_env(self.database.url, self.port)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 90.0) -> None:
        env = self._env()
        if self.split:
            commands = [("api", [str(TIDINGS), "api"])] + [
                (f"worker{n}", [str(TIDINGS), "worker"]) for n in range(1, self.workers + 1)
            ]
        else:
            commands = [("serve", [str(TIDINGS), "serve", *self.serve_args])]
        for name, command in commands:
            log = self.workdir / f"tidings-{name}.log"
            child_env = dict(env)
            if self.query_stats is not None:
                self.query_stats.mkdir(parents=True, exist_ok=True)
                command = [sys.executable, "-m", "bench.instrumented", *command[1:]]
                child_env["BENCH_QUERY_STATS"] = str(self.query_stats / f"{name}.json")
            self.children.append(Child(name, command, log, env=child_env).start())
        wait_port(self.port, timeout, self.children)

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.running]

    def log_tail(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.log_tail(1500)}" for c in self.children)

    def stop(self) -> None:
        # SIGINT: uvicorn's and the worker's graceful stop; SIGKILL to the group after 20 s.
        for child in self.children:
            child.stop(first=signal.SIGINT, grace=20)
        self.children.clear()


def describe(split: bool, database: str, serve_args: list[str], workers: int = 1) -> str:
    if split:
        workers_text = f"{workers} workers" if workers > 1 else "worker"
        return f"tidings api + {workers_text}, {database}"
    extra = f" {' '.join(serve_args)}" if serve_args else ""
    return f"tidings serve{extra}, {database}"


def print_statement_counts(folder: Path, accepted: int, top: int = 12) -> None:
    """The statements the gateway ran per accepted message, the most frequent first."""
    counts: dict[str, int] = {}
    for path in sorted(folder.glob("*.json")):
        for row in json.loads(path.read_text("utf-8")):
            counts[row["statement"]] = counts.get(row["statement"], 0) + int(row["executions"])
    total = sum(counts.values())
    per = total / accepted if accepted else float("nan")
    print(f"  SQL statements: {total} for {accepted} messages ({per:.2f} per message)")
    for statement, count in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {count:>8}  {statement[:110]}")
