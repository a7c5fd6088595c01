"""`python -m bench.run --database {sqlite,postgres,both}`: Tidings under load, one table.

For each database and scenario: a fresh copy of a seeded database, `tidings serve` as a
subprocess (API and delivery workers in one process), a warm-up, the measured window,
then the server is stopped and the database dropped. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.e2e.loadgen import wrk_available
from bench.load import (
    Sample,
    percentile,
    run_bulk,
    run_end_to_end,
    run_single_httpx,
    run_wrk,
    warm_up,
)
from bench.profile import summarize
from bench.server import (
    BenchDatabase,
    Profiler,
    ResourceSampler,
    Server,
    make_database,
    seed,
    tree_cpu_seconds,
    workdir,
)

SCENARIOS = ("single", "bulk", "e2e")
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    value: float
    unit: str


# The targets are set for SQLite (the embedded default); PostgreSQL is shown against them.
TARGETS = {
    "single": Target(1_500, "creates/s"),
    "bulk": Target(20_000, "msgs/s"),
    "e2e": Target(3_000, "msgs/s"),
}
RSS_TARGET_MB = 300


@dataclass
class Outcome:
    database: str
    scenario: str
    value: float  # the number the target is about
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float = 0.0
    server_cpu: float = 0.0  # cores busy, over the window
    loadgen_cpu: float = 0.0  # cores the load generator used, over the window
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None

    @property
    def target(self) -> Target:
        return TARGETS[self.scenario]

    @property
    def met(self) -> bool:
        return self.value >= self.target.value

    @property
    def rss_met(self) -> bool:
        return self.peak_rss_mb < RSS_TARGET_MB


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cpu_seconds(sampler: ResourceSampler) -> float:
    return tree_cpu_seconds(sampler.process)


def _wait_drained(db: BenchDatabase, limit: float = 60.0) -> None:
    """Let the warm-up's messages reach a final status so they stay out of the window."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        counts = db.status_counts()
        if not any(n for status, n in counts.items() if status in ("queued", "sent")):
            return
        time.sleep(0.25)
    log(f"warm-up backlog not drained after {limit:.0f} s; measuring anyway")


class Scraper:
    """GET /metrics every `interval` seconds during the window, as Prometheus would."""

    def __init__(self, base_url: str, interval: float) -> None:
        self.base_url = base_url
        self.interval = interval
        self.seconds: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 3600
        with httpx.Client(base_url=self.base_url, timeout=10, trust_env=False) as client:
            while not self._stop.wait(self.interval) and time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    ok = client.get("/metrics").status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.seconds.append(time.monotonic() - started)
                else:
                    self.failures += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        n = len(self.seconds)
        return {
            "count": n,
            "failures": self.failures,
            "mean_ms": round(1000 * sum(self.seconds) / n, 1) if n else None,
        }


class ActivitySampler:
    """PostgreSQL only: pg_stat_activity every 0.25 s, counting what active backends wait on."""

    def __init__(self, db: BenchDatabase) -> None:
        self.db = db
        self.counts: Counter[tuple[str, str]] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-activity", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 3600
        while not self._stop.wait(0.25) and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                rows = self.db.activity()  # type: ignore[attr-defined]
                self.samples += 1
                self.counts.update(rows)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=35)
        n = max(self.samples, 1)
        return [
            {"wait": wait, "statement": statement, "backends": count / n}
            for (wait, statement), count in self.counts.most_common(12)
        ]


def run_scenario(
    kind: str, scenario: str, template: BenchDatabase, root: Path, args: argparse.Namespace
) -> Outcome:
    sub = root / f"{kind}-{scenario}"
    sub.mkdir()
    db = template.clone(sub)
    server = Server(
        db.url,
        sub,
        mode="api" if args.api_only else "serve",
        query_stats=sub / "queries.json" if args.query_stats else None,
        extra_env={"TIDINGS_METRICS": "1" if args.metrics == "on" else "0"},
    )
    profiler: Profiler | None = None
    scraper: Scraper | None = None
    try:
        server.start()
        server.wait_ready()
        assert server.process is not None
        sampler = ResourceSampler(server.process, interval=0.2)
        sampler.start()
        key = args.key
        asyncio.run(warm_up(server.base_url, key))
        if not args.api_only:
            _wait_drained(db)
        before = db.status_counts()
        server.query_stats_window(opening=True)
        if args.profile:
            profiler = Profiler(
                server.process.pid,
                args.profile_dir / f"{kind}-{scenario}.txt",
                rate=args.profile_rate,
            )
            window = {"single": args.single_seconds, "bulk": args.bulk_time_limit}
            profiler.start(window.get(scenario, args.duration) + 30)
        activity = ActivitySampler(db) if args.query_stats and kind == "postgres" else None
        if activity is not None:
            activity.start()
        if args.metrics == "on" and args.scrape_interval > 0:
            scraper = Scraper(server.base_url, args.scrape_interval)
            scraper.start()
        cpu0, wall0 = _cpu_seconds(sampler), time.monotonic()
        outcome = _measure(kind, scenario, server, db, key, sub, args)
        outcome.details["metrics"] = args.metrics
        if scraper is not None:
            outcome.details["scrapes"] = scraper.stop()
        if activity is not None:
            outcome.details["pg_activity"] = activity.stop()
        outcome.server_cpu = (_cpu_seconds(sampler) - cpu0) / (time.monotonic() - wall0)
        server.query_stats_window(opening=False)
        if profiler is not None:
            profiler.stop()
            outcome.profile = str(profiler.path)
            outcome.details["profile_seconds"] = round(profiler.seconds, 1)
        stats = sampler.stop()
        outcome.peak_rss_mb = stats.peak_rss / MB
        after = db.status_counts()
        outcome.details["rows_added"] = sum(after.values()) - sum(before.values())
        if server.query_stats is not None and server.query_stats.exists():
            outcome.details["queries"] = json.loads(server.query_stats.read_text("utf-8"))
        return outcome
    except BaseException:
        log(f"server log tail:\n{server.log_tail()}")
        raise
    finally:
        if scraper is not None:
            scraper.stop()
        if profiler is not None and profiler.popen is not None:
            profiler.popen.kill()
            profiler.popen.wait(timeout=10)
        server.stop()
        db.drop()


def _measure(
    kind: str,
    scenario: str,
    server: Server,
    db: BenchDatabase,
    key: str,
    sub: Path,
    args: argparse.Namespace,
) -> Outcome:
    if scenario == "single":
        if wrk_available():
            single = run_wrk(
                server.base_url,
                key,
                workdir=sub,
                seconds=args.single_seconds,
                connections=args.connections,
                threads=args.wrk_threads,
            )
            tool = f"wrk -t{args.wrk_threads} -c{args.connections}"
        else:
            log("wrk not found (apt-get install wrk): falling back to httpx, which may bound")
            single = asyncio.run(
                run_single_httpx(
                    server.base_url, key, seconds=args.single_seconds, connections=args.connections
                )
            )
            tool = f"httpx x{args.connections}"
        return Outcome(
            kind,
            scenario,
            single.rate,
            "creates/s",
            p50_ms=single.p50_ms,
            p99_ms=single.p99_ms,
            loadgen_cpu=single.loadgen_cpu,
            seconds=single.seconds,
            details={
                "tool": tool,
                "requests": single.requests,
                "non_2xx": single.non_2xx,
                "socket_errors": single.socket_errors,
                "p90_ms": round(single.p90_ms, 1),
                "max_ms": round(single.max_ms, 1),
            },
        )
    if scenario == "bulk":
        bulk = asyncio.run(
            run_bulk(
                server.base_url,
                key,
                requests=args.bulk_requests,
                batch=args.bulk_size,
                concurrency=args.bulk_concurrency,
                time_limit=args.bulk_time_limit,
            )
        )
        return Outcome(
            kind,
            scenario,
            bulk.rate,
            "msgs/s",
            p50_ms=1000 * percentile(bulk.latencies, 0.5),
            p99_ms=1000 * percentile(bulk.latencies, 0.99),
            loadgen_cpu=bulk.loadgen_cpu,
            seconds=bulk.seconds,
            details={
                "requests": bulk.requests,
                "messages": bulk.messages,
                "failures": bulk.failures,
                "first_error": bulk.first_error,
                "concurrency": args.bulk_concurrency,
            },
        )

    def show(sample: Sample) -> None:
        if args.verbose:
            c = sample.counts
            log(
                f"  t={sample.at:5.1f}s accepted={sample.accepted} queued={c.get('queued', 0)} "
                f"sent={c.get('sent', 0)} delivered={c.get('delivered', 0)}"
            )

    e2e = asyncio.run(
        run_end_to_end(
            server.base_url,
            key,
            db.status_counts,
            seconds=args.duration,
            batch=args.bulk_size,
            concurrency=args.e2e_concurrency,
            backlog_cap=args.e2e_backlog_cap,
            rate=args.e2e_rate,
            on_sample=show,
        )
    )
    return Outcome(
        kind,
        scenario,
        e2e.delivered_rate,
        "msgs/s",
        p50_ms=1000 * percentile(e2e.latencies, 0.5),
        p99_ms=1000 * percentile(e2e.latencies, 0.99),
        loadgen_cpu=e2e.loadgen_cpu,
        seconds=e2e.seconds,
        details={
            "accepted": e2e.accepted,
            "accepted_per_s": round(e2e.accepted_rate),
            "delivered": e2e.delivered,
            "delivered_per_s_2nd_half": round(e2e.steady_delivered_rate()),
            "backlog_at_end": e2e.backlog,
            "failures": e2e.failures,
            "first_error": e2e.first_error,
            "feed": f"{args.e2e_rate:g} msgs/s" if args.e2e_rate else "max",
            "backlog_cap": args.e2e_backlog_cap,
            "capped_seconds": e2e.capped_seconds,
            "series": [
                (round(s.at, 1), s.accepted, s.counts.get("delivered", 0)) for s in e2e.samples
            ],
        },
    )


# --- Output --------------------------------------------------------------------------


def query_table(outcome: Outcome, top: int = 14) -> list[str]:
    """The statements of one window, by the time the event loop waited on them."""
    rows = outcome.details.get("queries") or []
    messages = max(int(outcome.details.get("rows_added", 0)), 1)
    total = sum(r["seconds"] for r in rows) or 1.0
    lines = [
        f"SQL in the {outcome.database} {outcome.scenario} window: {len(rows)} distinct "
        f"statements, {sum(r['executions'] for r in rows):,} executions, "
        f"{sum(r['seconds'] for r in rows):.1f} s of statement latency, "
        f"{messages:,} messages stored",
        f"  {'execs':>8} {'per msg':>8} {'rows':>9} {'seconds':>8} {'share':>6}  statement",
    ]
    for r in sorted(rows, key=lambda r: -r["seconds"])[:top]:
        lines.append(
            f"  {r['executions']:>8,} {r['executions'] / messages:>8.2f} {r['rows']:>9,} "
            f"{r['seconds']:>8.2f} {100 * r['seconds'] / total:>5.1f}%  {r['statement'][:110]}"
        )
    activity = outcome.details.get("pg_activity")
    if activity:
        lines.append("  pg_stat_activity, average active backends (0.25 s samples):")
        for row in activity:
            lines.append(f"  {row['backends']:>8.2f}  {row['wait']:<28} {row['statement']}")
    return lines


LABELS = {
    "single": "1 single create",
    "bulk": "2 bulk 1000/request",
    "e2e": "3 end-to-end delivered",
}


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def render(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    header = (
        f"{'database':9} {'scenario':23} {'result':>15} {'target':>16} {'met':>4} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'peak RSS':>9} {'<300MB':>6} {'srv CPU':>7} "
        f"{'gen CPU':>7}"
    )
    rule = "-" * len(header)
    mode = (
        "tidings api (no delivery workers)"
        if args.api_only
        else "tidings serve (API + delivery workers, one process)"
    )
    mode += f", metrics {args.metrics}"
    if args.metrics == "on" and args.scrape_interval > 0:
        mode += f" (scraped every {args.scrape_interval:g} s)"
    lines = [
        "",
        f"Tidings benchmark: {mode}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}; targets set for SQLite",
        rule,
        header,
        rule,
    ]
    for o in outcomes:
        lines.append(
            f"{o.database:9} {LABELS[o.scenario]:23} {_num(o.value) + ' ' + o.unit:>15} "
            f"{'>= ' + _num(o.target.value) + ' ' + o.target.unit:>16} "
            f"{'yes' if o.met else 'NO':>4} {_ms(o.p50_ms):>8} {_ms(o.p99_ms):>8} "
            f"{o.peak_rss_mb:>6.0f} MB {'yes' if o.rss_met else 'NO':>6} "
            f"{o.server_cpu:>6.2f}c {o.loadgen_cpu:>6.2f}c"
        )
        d = o.details
        if o.scenario == "single":
            note = (
                f"{d['requests']:,} requests in {o.seconds:.1f} s ({d['tool']}), "
                f"non-2xx {d['non_2xx']}, socket errors {d['socket_errors']}, "
                f"rows stored {d['rows_added']:,}"
            )
        elif o.scenario == "bulk":
            note = (
                f"{d['requests']} requests x {args.bulk_size} in {o.seconds:.1f} s, "
                f"{d['concurrency']} concurrent, failures {d['failures']}"
            )
        else:
            note = (
                f"accepted {_num(d['accepted_per_s'])}/s, delivered {_num(o.value)}/s "
                f"(2nd half {_num(d['delivered_per_s_2nd_half'])}/s), backlog at end "
                f"{d['backlog_at_end']:,} over {o.seconds:.0f} s, feed {d['feed']}, "
                f"failures {d['failures']}"
            )
            if d["capped_seconds"]:
                note += (
                    f", feeding paused ~{d['capped_seconds']:.0f} s at the "
                    f"{d['backlog_cap']:,} backlog cap"
                )
        if d.get("scrapes"):
            note += f", /metrics scraped {d['scrapes']['count']}x ({d['scrapes']['mean_ms']} ms)"
        if d.get("first_error"):
            note += f", first error: {str(d['first_error'])[:120]}"
        lines.append(f"{'':9} {'':23} {note}")
    lines.append(rule)
    lines.append(
        "p50/p99: per request (a bulk request carries 1,000 messages). srv CPU: cores the "
        "server process used; gen CPU: cores the load generator used."
    )
    return "\n".join(lines)


# --- Main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="Benchmark tidings serve on SQLite/PostgreSQL."
    )
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--duration", type=int, default=60, help="end-to-end window, seconds")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy each measured window")
    parser.add_argument("--profile-dir", type=Path, default=Path(__file__).parent / "profiles")
    parser.add_argument("--profile-rate", type=int, default=100)
    parser.add_argument(
        "--query-stats",
        action="store_true",
        help="count every SQL statement of each window (runs bench.instrumented serve)",
    )
    parser.add_argument(
        "--api-only",
        action="store_true",
        help="diagnostic: run `tidings api` (no delivery workers); skips end-to-end",
    )
    parser.add_argument("--single-seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--bulk-requests", type=int, default=100)
    parser.add_argument("--bulk-size", type=int, default=1000)
    parser.add_argument("--bulk-concurrency", type=int, default=4)
    parser.add_argument("--bulk-time-limit", type=float, default=60.0)
    parser.add_argument("--e2e-concurrency", type=int, default=2)
    parser.add_argument(
        "--metrics",
        choices=("on", "off"),
        default="on",
        help="TIDINGS_METRICS for the server (on: recorded, and scraped like Prometheus)",
    )
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=5.0,
        help="seconds between GET /metrics while measuring, with --metrics on (0: never)",
    )
    parser.add_argument(
        "--e2e-rate",
        type=float,
        default=0.0,
        help="open-loop feed in msgs/s; 0: as fast as it goes",
    )
    parser.add_argument(
        "--e2e-backlog-cap",
        type=int,
        default=50_000,
        help="pause feeding while accepted - final exceeds this (0: no cap)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a SQLite target is missed"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 3600 or not 1 <= args.single_seconds <= 3600:
        parser.error("durations are 1 to 3600 seconds")
    if not 1 <= args.bulk_size <= 10_000:
        parser.error("--bulk-size is 1 to 10000 (the API's batch maximum)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    databases = ("sqlite", "postgres") if args.database == "both" else (args.database,)
    scenarios = [s for s in SCENARIOS if not args.only or s in args.only]
    if args.api_only:
        scenarios = [s for s in scenarios if s != "e2e"]
    outcomes: list[Outcome] = []
    with workdir(keep=args.keep) as root:
        if args.keep:
            log(f"work dir {root}")
        for kind in databases:
            template_dir = root / f"{kind}-template"
            template_dir.mkdir()
            template = make_database(kind, template_dir)
            try:
                template.create()
                log(f"{kind}: seeding through the CLI")
                args.key = seed(template.url, template_dir).live_key
                for scenario in scenarios:
                    log(f"{kind}: {scenario}")
                    outcome = run_scenario(kind, scenario, template, root, args)
                    outcomes.append(outcome)
                    log(
                        f"{kind}: {scenario}: {outcome.value:,.0f} {outcome.unit}, "
                        f"peak RSS {outcome.peak_rss_mb:.0f} MB"
                    )
                    if outcome.details.get("queries") is not None:
                        print("\n".join(query_table(outcome)), file=sys.stderr)
                    if outcome.profile:
                        print(
                            "\n".join(
                                summarize(
                                    Path(outcome.profile),
                                    seconds=outcome.details.get("profile_seconds"),
                                    rate=args.profile_rate,
                                )
                            ),
                            file=sys.stderr,
                        )
            finally:
                template.drop()
    print(render(outcomes, args))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2), "utf-8")
    if args.check and not all(o.met and o.rss_met for o in outcomes if o.database == "sqlite"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
