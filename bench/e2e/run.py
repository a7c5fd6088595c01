"""`python -m bench.e2e`: Tidings and Kannel side by side on one workload, alternating.

Each round of each system: a fresh receiver, SMSC simulator and gateway (a copy of the seeded
database, or a fresh Kannel DLR store); `wrk` posts single messages for `--duration` s (the
load phase); then the drain phase lasts until every accepted message has its final callback
(or `--drain-timeout`). Gateway CPU covers both phases.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.e2e.kannel import (
    DLR_STORAGES,
    PASSWORD,
    SQLITE_JOURNALS,
    USERNAME,
    Kannel,
    kannel_available,
)
from bench.e2e.loadgen import KANNEL_SCRIPT, TIDINGS_SCRIPT, LoadResult, run_wrk
from bench.e2e.peers import Peers
from bench.e2e.procs import CpuMeter, free_port, postgres_backends
from bench.e2e.report import RoundResult, print_table, summarize
from bench.e2e.tidings import Tidings, TidingsSeed, describe, print_statement_counts, seed
from bench.server import (
    PG_ADMIN_URL,
    BenchDatabase,
    PostgresDatabase,
    make_database,
    postgres_admin,
    workdir,
)

POLL = 0.5
SETTLE = 1.0  # after the last final callback: time for a late duplicate to show


def stored_counter(database: BenchDatabase | None) -> Callable[[], int] | None:
    """Messages in Tidings' database, read beside the gateway."""
    if database is None:
        return None
    return lambda: sum(database.status_counts().values())


def ensure_wrk() -> str | None:
    """None when wrk is there (installed with apt-get as root when missing), else why not."""
    if shutil.which("wrk"):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "wrk is not installed (apt-get install wrk)"
    subprocess.run(
        ["apt-get", "install", "-y", "wrk"],
        capture_output=True,
        timeout=600,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return None if shutil.which("wrk") else "apt-get install wrk failed"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--mode",
        choices=["serve", "split"],
        help="tidings serve, or tidings api + tidings worker (default: serve on SQLite, "
        "split on PostgreSQL)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="tidings worker processes (--mode split); each binds its own SMPP link",
    )
    parser.add_argument("--serve-arg", action="append", default=[], help="passed to serve")
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for Tidings' processes (TIDINGS_RATE_LIMIT=0 is set: "
        "Kannel's sendsms has no rate limit either)",
    )
    parser.add_argument("--only", choices=["tidings", "kannel"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--duration", type=int, default=30, help="load phase, seconds")
    parser.add_argument("--drain-timeout", type=float, default=90.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--receipt-delay", type=float, default=2.0)
    parser.add_argument("--kannel-dlr-storage", choices=DLR_STORAGES, default="sqlite3")
    parser.add_argument(
        "--kannel-sqlite-journal",
        choices=SQLITE_JOURNALS,
        default="delete",
        help="journal mode of Kannel's sqlite3 DLR file: delete (SQLite's default, as "
        "shipped) or wal",
    )
    parser.add_argument(
        "--check",
        type=float,
        metavar="RATIO",
        help="exit 1 unless Tidings / Kannel final callbacks/s >= RATIO (the issue's target "
        "is 1.5) and Tidings drained with nothing lost and nothing duplicated",
    )
    parser.add_argument("--json", type=Path, help="save the results here")
    parser.add_argument(
        "--query-stats",
        type=Path,
        help="count Tidings' SQL statements (bench.instrumented) into this folder, one file "
        "per round and process, and print the statements per accepted message "
        "(one-process modes: forked `--processes` children are not counted)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.tidings_env):
        parser.error("--tidings-env takes KEY=VALUE")
    if args.mode is None:
        args.mode = "split" if args.database == "postgres" else "serve"
    if not 1 <= args.workers <= 16:
        parser.error("--workers is 1..16")
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 3600:
        parser.error("--rounds is 1..20 and --duration 1..3600")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        # Fixed for the run, so the seeded database (the SMPP supplier, the callback URL)
        # is copied as it is for every round.
        self.receiver_port = free_port()
        self.smsc_port = free_port()
        self.template: BenchDatabase | None = None
        self.seeded: TidingsSeed | None = None

    # --- Tidings ----------------------------------------------------------------------

    def seed_tidings(self) -> None:
        template = make_database(self.args.database, self.root / "template")
        template.create()
        self.template = template
        self.seeded = seed(
            template.url,
            self.root,
            self.smsc_port,
            f"http://127.0.0.1:{self.receiver_port}/tidings",
            self.args.window,
        )

    def tidings_label(self) -> str:
        args = self.args
        return describe(args.mode == "split", args.database, args.serve_arg, args.workers)

    def kannel_label(self) -> str:
        storage = self.args.kannel_dlr_storage
        if storage == "sqlite3" and self.args.kannel_sqlite_journal != "delete":
            storage += f" ({self.args.kannel_sqlite_journal})"
        return f"kannel 1.4.5, dlr-storage {storage}"

    # --- One round --------------------------------------------------------------------

    def run_round(self, system: str, number: int) -> RoundResult:
        args = self.args
        directory = self.root / f"{system}-{number}"
        directory.mkdir(parents=True)
        peers = Peers(directory, self.receiver_port, self.smsc_port, args.receipt_delay)
        database: BenchDatabase | None = None
        gateway: Tidings | Kannel
        if system == "kannel":
            if args.kannel_dlr_storage == "pgsql":
                database = make_database("postgres", directory)
                database.create()
            gateway = Kannel(
                directory,
                self.smsc_port,
                args.kannel_dlr_storage,
                args.window,
                args.kannel_sqlite_journal,
                pgsql_url=database.url if database is not None else None,
            )
        else:
            assert self.template is not None
            database = self.template.clone(directory)
            env = {"TIDINGS_RATE_LIMIT": "0"}
            env.update(item.split("=", 1) for item in args.tidings_env)
            gateway = Tidings(
                database,
                directory,
                split=args.mode == "split",
                workers=args.workers,
                serve_args=args.serve_arg,
                extra_env=env,
                query_stats=(
                    args.query_stats / f"round{number}" if args.query_stats is not None else None
                ),
            )
        settle(postgres=args.database == "postgres")
        load_before = os.getloadavg()[0]
        try:
            peers.start()
            gateway.start()
            if not peers.wait_bound(30):
                print(f"  ({system}: no bind after 30 s, measuring anyway)", file=sys.stderr)
            gateway_cpu = CpuMeter(roots=gateway.pids).start()
            db_cpu = None
            if isinstance(database, PostgresDatabase):
                name = database.name
                db_cpu = CpuMeter(roots=[], finder=lambda: postgres_backends(name)).start()
            peer_cpu = {name: CpuMeter(roots=[pid]).start() for name, pid in peers.pids.items()}
            window_start = time.monotonic()
            load = self._load(system, number, gateway.base_url, peers.callback_base, directory)
            stored_count = stored_counter(database) if system == "tidings" else None
            drained, drain_seconds = self._drain(peers, load, stored_count)
            gateway_seconds = gateway_cpu.stop()
            db_seconds = db_cpu.stop() if db_cpu is not None else None
            peer_seconds = {name: meter.stop() for name, meter in peer_cpu.items()}
            window_seconds = time.monotonic() - window_start
            callbacks = peers.callbacks()
            smsc = peers.smsc_stats()
            stored = (
                sum(database.status_counts().values())
                if database is not None and system == "tidings"
                else None
            )
        except Exception:
            print(gateway.log_tail(), file=sys.stderr)
            raise
        finally:
            gateway.stop()
            peers.stop()
            if database is not None:
                database.drop()
        if system == "tidings" and args.query_stats is not None:
            print_statement_counts(args.query_stats / f"round{number}", load.accepted)
        return RoundResult.build(
            system=system,
            label=self.tidings_label() if system == "tidings" else self.kannel_label(),
            number=number,
            load=load,
            callbacks=callbacks,
            smsc=smsc,
            stored=stored,
            drained=drained,
            drain_seconds=drain_seconds,
            window_seconds=window_seconds,
            gateway_cpu=gateway_seconds,
            db_cpu=db_seconds,
            peer_cpu=peer_seconds,
            load_average=(load_before, os.getloadavg()[0]),
        )

    def _load(
        self, system: str, number: int, base_url: str, callback_base: str, directory: Path
    ) -> LoadResult:
        prefix = f"{system[0]}{number}"
        if system == "kannel":
            script = KANNEL_SCRIPT
            wrk_args = [prefix, USERNAME, PASSWORD, f"{callback_base}/kannel"]
        else:
            assert self.seeded is not None
            script = TIDINGS_SCRIPT
            wrk_args = [prefix, self.seeded.live_key]
        return run_wrk(
            script,
            base_url,
            wrk_args,
            workdir=directory,
            seconds=self.args.duration,
            threads=self.args.threads,
            connections=self.args.connections,
        )

    def _drain(
        self, peers: Peers, load: LoadResult, stored: Callable[[], int] | None
    ) -> tuple[bool, float]:
        """Until every message accepted (by wrk's count, the SMSC's and, for Tidings, the
        database's: wrk does not count the answers in flight when it stops) has a final
        callback. The database is read only when the other counts are met."""
        started = time.monotonic()
        deadline = started + self.args.drain_timeout
        drained = False
        while time.monotonic() < deadline:
            finals = int(peers.callbacks()["finals"])
            submits = int(peers.smsc_stats().get("submits", 0))
            if finals >= max(load.accepted, submits) and (stored is None or finals >= stored()):
                drained = True
                break
            time.sleep(POLL)
        seconds = time.monotonic() - started
        time.sleep(SETTLE)
        return drained, seconds

    # --- The run ----------------------------------------------------------------------

    def run(self) -> list[RoundResult]:
        systems = ["kannel", "tidings"] if self.args.only is None else [self.args.only]
        if "kannel" in systems:
            why = kannel_available()
            if why is not None:
                print(f"Skipping Kannel: {why}", file=sys.stderr)
                systems.remove("kannel")
        results: list[RoundResult] = []
        if "tidings" in systems:
            self.seed_tidings()
        try:
            for number in range(1, self.args.rounds + 1):
                for system in systems:
                    print(f"round {number}: {system} ...", file=sys.stderr, flush=True)
                    result = self.run_round(system, number)
                    print(f"  {result.one_line()}", file=sys.stderr, flush=True)
                    results.append(result)
        finally:
            if self.template is not None:
                self.template.drop()
        return results


def machine_note(database: str) -> str:
    """What the numbers depend on besides the code: cores, load, PostgreSQL's autovacuum."""
    note = f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    if database == "postgres":
        done = subprocess.run(
            ["psql", "-X", "-A", "-t", PG_ADMIN_URL, "-c", "SHOW autovacuum"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        note += f", PostgreSQL autovacuum = {done.stdout.strip() or '?'}"
    return note


# Each round starts on a quiet machine: what the last round left to write reaches the disk
# first. Kannel's SQLite DLR store (and the dropped databases) leave seconds of writeback,
# and a PostgreSQL commit waiting behind it cost the next round a quarter of its rate.
SETTLE_SECONDS = 5.0


def settle(*, postgres: bool) -> None:
    os.sync()
    if postgres:
        postgres_admin("CHECKPOINT")
    time.sleep(SETTLE_SECONDS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = ensure_wrk()
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    with workdir(keep=args.keep) as root:
        if args.keep:
            print(f"working in {root}", file=sys.stderr)
        results = Bench(args, root).run()
    print(
        f"bench.e2e: {machine_note(args.database)}; wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s, 1 bind, window {args.window}, receipts after "
        f"{args.receipt_delay:g} s"
    )
    print_table(results)
    summary = summarize(results)
    if args.json is not None:
        payload: dict[str, Any] = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "rounds": [asdict(r) for r in results],
            "summary": summary,
        }
        args.json.write_text(json.dumps(payload, indent=2), "utf-8")
    if args.check is not None:
        failures = check(summary, args.check)
        for failure in failures:
            print(f"CHECK FAILED: {failure}")
        return 1 if failures else 0
    return 0


def check(summary: dict[str, Any], ratio: float) -> list[str]:
    failures = []
    if "ratio_final_rate" not in summary:
        failures.append("no Tidings / Kannel ratio (both systems must run)")
    elif summary["ratio_final_rate"] < ratio:
        failures.append(f"Tidings / Kannel = {summary['ratio_final_rate']:.2f} < {ratio:g}")
    tidings = summary.get("tidings")
    if tidings and (tidings["lost"] or tidings["still_due"] or tidings["duplicates"]):
        failures.append(
            f"tidings: {tidings['lost']} lost, {tidings['still_due']} still due after the "
            f"drain timeout, {tidings['duplicates']} duplicated"
        )
    return failures
