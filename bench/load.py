"""Load generators: wrk (with a Lua script) for single creates, asyncio + httpx for bulk."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

CREATE_PATH = "/rest/sms/create"
MSISDN_BASE = 380_970_000_000
MSISDN_SPAN = 10_000_000  # 38097 + 7 digits

# Every request gets a unique reference: a per-thread counter plus the thread's number.
# The wrk output ends with one JSON line that run.py reads.
WRK_SCRIPT = r"""
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  key = args[1]
  prefix = args[2] or "w"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-KEY"] = key
end

function request()
  counter = counter + 1
  local ref = prefix .. tid .. "n" .. counter
  local msisdn = string.format("38097%07d", (tid * 1000003 + counter) % 10000000)
  local body = '{"destination":"phone","msisdn":"' .. msisdn .. '","reference":"' .. ref ..
    '","originator":"test","body":"test sms"}'
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(slots=True)
class SingleResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    loadgen_cpu: float  # CPU seconds the load generator used per wall second

    @property
    def rate(self) -> float:
        return (self.requests - self.non_2xx - self.socket_errors) / self.seconds


def wrk_command(
    script: Path, url: str, args: Sequence[str], seconds: int, connections: int, threads: int
) -> list[str]:
    """wrk with a Lua script that prints a `WRK_RESULT {json}` line; `args` go to the script."""
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]


def run_wrk(
    base_url: str,
    key: str,
    *,
    workdir: Path,
    seconds: int,
    connections: int,
    threads: int,
    prefix: str = "w",
) -> SingleResult:
    script = workdir / "single.lua"
    script.write_text(WRK_SCRIPT, "utf-8")
    command = wrk_command(
        script, base_url + CREATE_PATH, (key, prefix), seconds, connections, threads
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return SingleResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non_2xx=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        loadgen_cpu=cpu / wall,
    )


# --- Bulk requests -------------------------------------------------------------------


def bulk_body(prefix: str, batch_no: int, size: int) -> bytes:
    """`phones` with `size` distinct numbers and references unique per (prefix, batch_no)."""
    start = batch_no * size
    phones = [
        {
            "msisdn": str(MSISDN_BASE + (start + i) % MSISDN_SPAN),
            "reference": f"{prefix}{batch_no}x{i}",
        }
        for i in range(size)
    ]
    return orjson.dumps(
        {"destination": "phones", "phones": phones, "originator": "test", "body": "test sms"}
    )


def single_body(prefix: str, n: int) -> bytes:
    return orjson.dumps(
        {
            "destination": "phone",
            "msisdn": str(MSISDN_BASE + n % MSISDN_SPAN),
            "reference": f"{prefix}{n}",
            "originator": "test",
            "body": "test sms",
        }
    )


def http_client(base_url: str, key: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"X-API-KEY": key, "Content-Type": "application/json"},
        timeout=httpx.Timeout(120.0, connect=10.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        trust_env=False,  # loopback only: no proxy from the environment
    )


class RequestFailed(RuntimeError):
    pass


async def post_create(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(CREATE_PATH, content=body)
    # The answer's top-level error sits at its end (after the per-phone results).
    if response.status_code != 200 or b'"error":"0"' not in response.content[-400:]:
        raise RequestFailed(f"HTTP {response.status_code}: {response.text[:300]}")


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


@dataclass(slots=True)
class BulkResult:
    requests: int
    messages: int
    failures: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    loadgen_cpu: float = 0.0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


async def run_bulk(
    base_url: str,
    key: str,
    *,
    requests: int,
    batch: int,
    concurrency: int,
    time_limit: float,
    prefix: str = "b",
) -> BulkResult:
    """`requests` bulk creates of `batch` phones, `concurrency` at a time, within `time_limit`."""
    bodies = [bulk_body(prefix, n, batch) for n in range(requests)]  # built before timing
    result = BulkResult(requests=0, messages=0, failures=0, seconds=0.0)
    next_index = 0
    async with http_client(base_url, key, concurrency) as client:
        cpu0 = time.process_time()
        started = time.monotonic()
        deadline = started + time_limit

        async def feeder() -> None:
            nonlocal next_index
            while next_index < len(bodies) and time.monotonic() < deadline:
                body = bodies[next_index]
                next_index += 1
                t0 = time.monotonic()
                try:
                    await post_create(client, body)
                except (RequestFailed, httpx.HTTPError) as error:
                    result.failures += 1
                    result.first_error = result.first_error or str(error)
                    continue
                result.latencies.append(time.monotonic() - t0)
                result.requests += 1
                result.messages += batch

        await asyncio.gather(*(feeder() for _ in range(concurrency)))
        result.seconds = time.monotonic() - started
        result.loadgen_cpu = (time.process_time() - cpu0) / result.seconds
    return result


async def warm_up(base_url: str, key: str, *, singles: int = 20, bulks: int = 2) -> None:
    """A few small requests so first-call costs (imports, caches, pool) stay out of the
    numbers; small, so that delivering them is done before the window opens."""
    async with http_client(base_url, key, 4) as client:
        for n in range(singles):
            await post_create(client, single_body("wu", n))
        for n in range(bulks):
            await post_create(client, bulk_body("wb", n, 10))


# --- End to end ----------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    at: float  # seconds since the window opened
    accepted: int  # messages the API answered for, in the window
    counts: dict[str, int]


@dataclass(slots=True)
class EndToEndResult:
    seconds: float
    accepted: int
    delivered: int
    final: int
    backlog: int
    failures: int
    samples: list[Sample]
    loadgen_cpu: float
    first_error: str | None = None
    latencies: list[float] = field(default_factory=list)
    capped_seconds: float = 0.0

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def delivered_rate(self) -> float:
        return self.delivered / self.seconds

    def steady_delivered_rate(self) -> float:
        """Delivered/s over the window's second half (past start-up transients)."""
        if len(self.samples) < 3:
            return self.delivered_rate
        mid = self.samples[-1].at / 2
        first = next(s for s in self.samples if s.at >= mid)
        last = self.samples[-1]
        span = last.at - first.at
        if span <= 0:
            return self.delivered_rate
        return (last.counts.get("delivered", 0) - first.counts.get("delivered", 0)) / span


FINAL = ("delivered", "undelivered", "expired", "rejected", "failed")


async def run_end_to_end(
    base_url: str,
    key: str,
    status_counts: Callable[[], dict[str, int]],
    *,
    seconds: float,
    batch: int,
    concurrency: int,
    backlog_cap: int,
    rate: float,
    poll_interval: float = 1.0,
    on_sample: Callable[[Sample], Any] | None = None,
    prefix: str = "e",
) -> EndToEndResult:
    """Feed bulk creates for `seconds` while counting delivered messages in the database.

    `rate` > 0 feeds open-loop at that many messages/s; otherwise as fast as `concurrency`
    requests in flight allow. Either way feeding pauses while accepted - final exceeds
    `backlog_cap` (0: no cap), so the window measures the delivery path, not a growing queue.
    """
    base = await asyncio.to_thread(status_counts)
    base_final = sum(base.get(s, 0) for s in FINAL)
    accepted = 0
    failures = 0
    first_error: str | None = None
    latencies: list[float] = []
    samples: list[Sample] = []
    capped: list[float] = []  # poll times at which feeding was paused by the backlog cap
    last_final = 0  # final messages of the window, as of the latest sample
    batch_no = 0
    cpu0 = time.process_time()
    started = time.monotonic()
    deadline = started + seconds

    async with http_client(base_url, key, concurrency) as client:

        async def feeder() -> None:
            nonlocal accepted, failures, first_error, batch_no
            while time.monotonic() < deadline:
                if backlog_cap and accepted - last_final > backlog_cap:
                    await asyncio.sleep(0.05)
                    continue
                if rate > 0:
                    # Open loop: batch k is due at k * batch / rate seconds into the window.
                    due = started + batch_no * batch / rate
                    if due > time.monotonic():
                        await asyncio.sleep(min(due - time.monotonic(), 1.0))
                        continue
                number = batch_no
                batch_no += 1
                body = bulk_body(prefix, number, batch)
                t0 = time.monotonic()
                try:
                    await post_create(client, body)
                except (RequestFailed, httpx.HTTPError) as error:
                    failures += 1
                    first_error = first_error or str(error)
                    await asyncio.sleep(0.1)
                    continue
                latencies.append(time.monotonic() - t0)
                accepted += batch

        async def poller() -> None:
            nonlocal last_final
            while time.monotonic() < deadline:
                await asyncio.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
                counts = await asyncio.to_thread(status_counts)
                last_final = sum(counts.get(s, 0) for s in FINAL) - base_final
                if backlog_cap and accepted - last_final > backlog_cap:
                    capped.append(time.monotonic())
                sample = Sample(time.monotonic() - started, accepted, counts)
                samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)

        await asyncio.gather(poller(), *(feeder() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    end = await asyncio.to_thread(status_counts)
    samples.append(Sample(elapsed, accepted, end))
    final = sum(end.get(s, 0) for s in FINAL) - base_final
    delivered = end.get("delivered", 0) - base.get("delivered", 0)
    return EndToEndResult(
        seconds=elapsed,
        accepted=accepted,
        delivered=delivered,
        final=final,
        backlog=sum(n for status, n in end.items() if status not in FINAL),
        failures=failures,
        samples=samples,
        loadgen_cpu=(time.process_time() - cpu0) / elapsed,
        first_error=first_error,
        latencies=latencies,
        capped_seconds=len(capped) * poll_interval,
    )


async def run_single_httpx(
    base_url: str, key: str, *, seconds: float, connections: int, prefix: str = "h"
) -> SingleResult:
    """The fallback when wrk is missing: slower, so the load generator may be the bound."""
    latencies: list[float] = []
    failures = 0
    counter = 0
    async with http_client(base_url, key, connections) as client:
        cpu0 = time.process_time()
        started = time.monotonic()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal failures, counter
            while time.monotonic() < deadline:
                counter += 1
                t0 = time.monotonic()
                try:
                    await post_create(client, single_body(prefix, counter))
                except (RequestFailed, httpx.HTTPError):
                    failures += 1
                    continue
                latencies.append(time.monotonic() - t0)

        await asyncio.gather(*(worker() for _ in range(connections)))
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu0
    return SingleResult(
        requests=len(latencies) + failures,
        seconds=wall,
        p50_ms=1000 * percentile(latencies, 0.50),
        p90_ms=1000 * percentile(latencies, 0.90),
        p99_ms=1000 * percentile(latencies, 0.99),
        max_ms=1000 * max(latencies, default=0.0),
        non_2xx=failures,
        socket_errors=0,
        loadgen_cpu=cpu / wall,
    )
