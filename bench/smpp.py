"""SMPP client throughput: submit_sm/s with delivery receipts, against a local SMSC.

    .venv/bin/python -m bench.smpp [--messages 20000]
                                   [--scenario connector|pipeline|server|both|all]
                                   [--smsc ours|smpp34] [--database sqlite|postgres]
                                   [--configs 1x10,4x50] [--baseline] [--check]

The SMSC runs in its own process on 127.0.0.1 (``python -m tidings.connectors.smpp.smsc``,
or smpp34's Rust server with ``--smsc smpp34``), answering every submit_sm at once and
sending a receipt for each (receipt window 100). For each of 1 bind and 4 binds, window 10
and window 50:

- ``connector``: the SmppConnector alone, fed batches of 500 (as a lane does), receipts
  acknowledged after a sink that only counts them. Time from the first submit to the last
  receipt.
- ``pipeline``: end to end in this process on SQLite (``--database postgres``: PostgreSQL):
  messages accepted beforehand, a SupplierLane claims, submits and records them, receipts
  go through the worker's report sink (stored and applied, one transaction per batch of
  receipts) and the sweeper runs. Time from the lane's start until every message is
  "delivered" in the database.

- ``server``: through our SMPP server. ``tidings serve`` runs as its own process with
  ``TIDINGS_SMPP_PORT`` set, on a fresh database with a zero-latency simulator supplier; this
  process binds ``binds`` transceivers to it (our EsmeSession, ``window`` submits in flight
  each) and sends submit_sm with registered_delivery 1. Time from the first submit_sm until
  every deliver_sm receipt came back (submit_sm → accepted → simulator → receipt →
  deliver_sm): the end-to-end rate a client of Tidings sees.

``--baseline`` adds the pipeline with the simulator connector instead of SMPP: the rate the
database path allows on this machine, to tell the SMPP cost from the rest.

Rates are messages (single-part submit_sm) per second, each with its receipt. Every loop is
bounded by count and time; the SMSC process is stopped in a ``finally``, by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import func, select, update

from bench.server import BenchDatabase, Profiler, cli_env, make_database
from bench.server import seed as seed_gateway
from tidings.accounts.models import Client
from tidings.accounts.service import Caller, KeyKind, create_client
from tidings.billing.service import import_prices
from tidings.clock import SystemClock
from tidings.connectors.base import OutboundMessage, SupplierReport
from tidings.connectors.simulator import SimulatorConnector
from tidings.connectors.smpp.connector import SmppConnector
from tidings.connectors.smpp.pdu import CommandStatus, DataSm, DeliverSm, SubmitSm, status_name
from tidings.connectors.smpp.session import BindMode, EsmeSession, Link, SessionConfig
from tidings.connectors.smpp.tlv import Tag
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.migrate import upgrade
from tidings.delivery.worker import DeliveryWorker, SupplierLane, WorkerOptions
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.models import Message
from tidings.messages.storing import accept_sms
from tidings.numbering import CountryTable
from tidings.routing.models import Supplier
from tidings.routing.service import create_route, create_supplier

CONFIGS = [(1, 10), (1, 50), (4, 10), (4, 50)]
TARGET = 2000.0
PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"
TIME_LIMIT = 120.0  # seconds for one measurement, at most

SMPP34_SMSC = """
import asyncio, signal, smpp34, sys

async def main(port):
    server = smpp34.Server(host="127.0.0.1", port=port, system_id="RustSMSC")
    await server.start()
    esmes, tasks, counter = {}, set(), [0]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def receipt(event, number):
        text = f"id:{number:x} sub:001 dlvrd:001 submit date:2603011200 done date:2603011200 "
        await esmes[event.session_id].deliver_sm(
            event.source_addr, (text + "stat:DELIVRD err:000 text:").encode(),
            source_addr=event.destination_addr, esm_class=4)

    async def serve():
        while True:
            event = await server.next()
            if isinstance(event, smpp34.Esme):
                esmes[event.session_id] = event
            elif isinstance(event, smpp34.SubmitSmEvent):
                counter[0] += 1
                event.accept(message_id=f"{counter[0]:x}")
                task = asyncio.ensure_future(receipt(event, counter[0]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    serving = asyncio.ensure_future(serve())
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    serving.cancel()
    await server.stop()

asyncio.run(main(int(sys.argv[1])))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def smsc_process(kind: str) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    if kind == "smpp34":
        command = [sys.executable, "-c", SMPP34_SMSC, str(port)]
    else:
        command = [
            sys.executable,
            "-m",
            "tidings.connectors.smpp.smsc",
            "--port",
            str(port),
            "--receipt-window",
            "100",
        ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if "listening" not in line:
            raise RuntimeError(f"the SMSC did not start: {line!r}")
        yield port, psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def smpp_options(port: int, binds: int, window: int, id_format: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "tidings",
        "password": "secret",
        "binds": binds,
        "window": window,
        "receipt_id_format": id_format,
    }


@dataclass(frozen=True)
class Result:
    scenario: str
    binds: int
    window: int
    messages: int
    seconds: float
    receipts: int
    own_cpu: float = 0.0  # seconds of this process (connector, lane, database)
    smsc_cpu: float = 0.0  # seconds of the SMSC process
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def outbound(count: int) -> list[OutboundMessage]:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return [
        OutboundMessage(i, str(380_970_000_000 + i), "Bench", "bench", "gsm7", 1, expires)
        for i in range(1, count + 1)
    ]


async def run_connector(port: int, binds: int, window: int, count: int, smsc: str) -> Result:
    received = 0
    all_in = asyncio.Event()

    async def sink(_supplier: int, reports: Sequence[SupplierReport]) -> None:
        nonlocal received
        received += len(reports)
        if received >= count:
            all_in.set()

    connector = SmppConnector(1, smpp_options(port, binds, window, "as_is"), SystemClock())
    await connector.start(sink)
    messages = outbound(count)
    try:
        for session in connector.sessions:
            await session.wait_bound(10)
        started = time.perf_counter()
        for start in range(0, count, 500):
            outcomes = await connector.submit(messages[start : start + 500])
            if any(o.supplier_message_id is None for o in outcomes):
                raise RuntimeError(f"a submit was not accepted: {outcomes[0]}")
            if time.perf_counter() - started > TIME_LIMIT:
                break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), TIME_LIMIT)
        seconds = time.perf_counter() - started
    finally:
        await connector.stop()
    return Result(f"connector/{smsc}", binds, window, count, seconds, received)


async def seed(database_url: str, port: int, binds: int, window: int, count: int) -> int:
    await upgrade(database_url)
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    try:
        async with transaction(sessions) as session:
            await import_prices(
                session,
                CountryTable.load(),
                "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n",
            )
            client = await create_client(session, clock, name="bench", balance=Decimal(10**7))
            supplier = await create_supplier(
                session,
                clock,
                name="smsc",
                kind="smpp",
                options=smpp_options(port, binds, window, "as_is"),
            )
            await create_route(session, clock, type_="sms", supplier=supplier.name)
        caller = Caller(client_id=client.client.id, key_kind=KeyKind.LIVE, tariff=0)
        for start in range(0, count, 10_000):
            items = [
                SmsItem(str(380_970_000_000 + i), None, "Bench", "bench")
                for i in range(start, min(count, start + 10_000))
            ]
            async with transaction(sessions) as session:
                await accept_sms(session, clock, caller, SmsRequest("phones", items), Limits())
        return int(supplier.id)
    finally:
        await engine.dispose()


async def run_pipeline(
    database_url: str, port: int, binds: int, window: int, count: int, smsc: str
) -> Result:
    supplier_id = await seed(database_url, port, binds, window, count)
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    options = WorkerOptions(poll_interval=0.01)
    worker = DeliveryWorker(sessions, clock, options)
    try:
        async with sessions() as session:
            supplier = await session.get(Supplier, supplier_id)
        assert supplier is not None
        connector: SmppConnector | SimulatorConnector
        if smsc == "simulator":  # the same path without SMPP: what the database allows
            connector = SimulatorConnector(supplier_id, {}, clock)
            await connector.start(worker.report)
        else:
            connector = SmppConnector(supplier_id, dict(supplier.options), clock)
            await connector.start(worker.report)
            for session_ in connector.sessions:
                await session_.wait_bound(10)
        lane = SupplierLane(supplier, connector, sessions, clock, options)
        started = time.perf_counter()
        lane.start()
        delivered = 0
        try:
            while time.perf_counter() - started < TIME_LIMIT:
                await asyncio.sleep(0.25)
                await worker.sweep()
                async with sessions() as session:
                    delivered = (
                        await session.scalar(
                            select(func.count())
                            .select_from(Message)
                            .where(Message.status == "delivered")
                        )
                        or 0
                    )
                if delivered >= count:
                    break
            seconds = time.perf_counter() - started
        finally:
            await lane.stop()
    finally:
        await engine.dispose()
    kind = "postgres" if database_url.startswith("postgres") else "sqlite"
    return Result(f"pipeline/{smsc}/{kind}", binds, window, count, seconds, delivered)


TIDINGS = Path(sys.executable).parent / "tidings"


@contextlib.contextmanager
def gateway_process(
    database: BenchDatabase, workdir: Path, split: bool = False
) -> Iterator[tuple[int, dict[str, str], list[psutil.Process]]]:
    """A seeded ``tidings serve`` with its SMPP listener (``split``: ``tidings smpp`` beside a
    ``tidings worker``); (smpp port, credentials, processes)."""
    seeded = seed_gateway(database.url, workdir)
    env = cli_env(database.url, free_port())
    issued = subprocess.run(
        [str(TIDINGS), "clients", "smpp-credentials", str(seeded.client_id), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if issued.returncode != 0:
        raise RuntimeError(f"tidings clients smpp-credentials failed: {issued.stderr[-2000:]}")
    credentials: dict[str, str] = json.loads(issued.stdout)
    asyncio.run(_allow_binds(database.url, seeded.client_id, 8))
    port = free_port()
    env["TIDINGS_SMPP_PORT"] = str(port)
    commands = [["smpp"], ["worker"]] if split else [["serve"]]
    with (workdir / "server.log").open("ab") as log_file:
        processes = [
            subprocess.Popen(
                [str(TIDINGS), *command],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for command in commands
        ]
    try:
        yield port, credentials, [psutil.Process(p.pid) for p in processes]
    except BaseException:
        log_text = (workdir / "server.log").read_text("utf-8", "replace")
        print(f"tidings serve's log ends:\n{log_text[-3000:]}", flush=True)
        raise
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def _allow_binds(database_url: str, client_id: int, binds: int) -> None:
    engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await session.execute(
                update(Client).where(Client.id == client_id).values(smpp_max_binds=binds)
            )
    finally:
        await engine.dispose()


async def run_server(
    port: int, credentials: dict[str, str], binds: int, window: int, count: int, kind: str
) -> Result:
    """submit_sm to our SMPP server until every message's deliver_sm receipt is back."""
    loop = asyncio.get_running_loop()
    receipts = 0
    receipted: set[bytes] = set()  # receipts can come twice (at least once): count messages
    latencies: list[float] = []  # submit_sm -> submit_sm_resp, seconds
    refused: dict[str, int] = {}
    all_in = asyncio.Event()

    def on_deliver(_link: Link, pdu: DeliverSm | DataSm) -> asyncio.Future[int]:
        nonlocal receipts
        if pdu.esm_class & 0x04:
            receipts += 1
            receipted.add(pdu.tlvs.get(Tag.RECEIPTED_MESSAGE_ID, b""))
            if len(receipted) >= count:
                all_in.set()
        answer: asyncio.Future[int] = loop.create_future()
        answer.set_result(CommandStatus.ESME_ROK)
        return answer

    config = SessionConfig(
        host="127.0.0.1",
        port=port,
        system_id=credentials["system_id"],
        password=credentials["password"],
        mode=BindMode.TRANSCEIVER,
        window=window,
        response_timeout=30.0,
        reconnect_delay=0.2,
        reconnect_max=1.0,
    )
    sessions = [EsmeSession(config, on_deliver, name=f"bench-{n}") for n in range(binds)]
    for session in sessions:
        session.start()
    numbers = iter(range(count))
    started = time.perf_counter()

    async def submitter(session: EsmeSession) -> None:
        for number in numbers:
            link = session.link
            if link is None or not link.usable or time.perf_counter() - started > TIME_LIMIT:
                return
            pdu = SubmitSm(
                source_addr_ton=5,
                source_addr="Bench",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=str(380_970_000_000 + number),
                registered_delivery=1,
                short_message=b"bench",
            )
            sent_at = time.perf_counter()
            response = await link.submit(pdu)
            latencies.append(time.perf_counter() - sent_at)
            if response.command_status != CommandStatus.ESME_ROK:
                name = status_name(response.command_status)
                refused[name] = refused.get(name, 0) + 1

    try:
        for session in sessions:
            if not await session.wait_bound(90):
                raise RuntimeError(f"no bind to tidings serve: {session.last_error}")
        started = time.perf_counter()
        await asyncio.gather(*(submitter(s) for s in sessions for _ in range(window)))
        submitted = time.perf_counter() - started
        if refused:
            raise RuntimeError(f"submits refused: {refused}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                all_in.wait(), max(1.0, TIME_LIMIT - time.perf_counter() + started)
            )
        seconds = time.perf_counter() - started
    finally:
        for session in sessions:
            await session.stop(grace=1.0)
    latencies.sort()
    p50, p99 = (latencies[int(len(latencies) * q)] * 1000 if latencies else 0 for q in (0.5, 0.99))
    note = f"all submit_sm answered after {submitted:.2f} s, submit_sm_resp p50 {p50:.0f} ms"
    note += f" p99 {p99:.0f} ms"
    if receipts > len(receipted):
        note += f", {receipts - len(receipted)} receipts came twice"
    return Result(f"server/{kind}", binds, window, count, seconds, len(receipted), note=note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--scenario",
        choices=["connector", "pipeline", "server", "both", "all"],
        default="all",
        help="both: connector and pipeline; all: the three",
    )
    parser.add_argument("--smsc", choices=["ours", "smpp34"], default="ours")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--configs",
        default=",".join(f"{b}x{w}" for b, w in CONFIGS),
        help="binds x window, comma separated",
    )
    parser.add_argument(
        "--baseline", action="store_true", help="also the pipeline with the simulator connector"
    )
    parser.add_argument("--split", action="store_true", help="tidings smpp + tidings worker")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET:.0f}/s")
    parser.add_argument(
        "--profile",
        type=Path,
        help="server scenario: py-spy record of tidings serve into this directory (raw format)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("tidings.smpp").setLevel(logging.ERROR)  # refused connects at start-up
    configs = [tuple(int(n) for n in c.split("x")) for c in args.configs.split(",")]
    wanted = {
        "connector": {"connector"},
        "pipeline": {"pipeline"},
        "server": {"server"},
        "both": {"connector", "pipeline"},
        "all": {"connector", "pipeline", "server"},
    }[args.scenario]
    print(f"load average before: {' '.join(f'{n:.2f}' for n in os.getloadavg())}", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tidings-smpp-bench-") as tmp:
        for binds, window in configs:
            if wanted & {"connector", "pipeline"}:
                with smsc_process(args.smsc) as (port, smsc):
                    if "connector" in wanted:
                        results.append(
                            measured(
                                [smsc],
                                run_connector(port, binds, window, args.messages, args.smsc),
                            )
                        )
                        print(_line(results[-1]), flush=True)
                    if "pipeline" in wanted:
                        database = make_database(args.database, Path(tmp) / f"{binds}-{window}")
                        database.create()
                        try:
                            results.append(
                                measured(
                                    [smsc],
                                    run_pipeline(
                                        database.url, port, binds, window, args.messages, args.smsc
                                    ),
                                )
                            )
                        finally:
                            database.drop()
                        print(_line(results[-1]), flush=True)
            if "server" in wanted:
                workdir = Path(tmp) / f"server-{binds}-{window}"
                workdir.mkdir()
                database = make_database(args.database, workdir)
                database.create()
                try:
                    with gateway_process(database, workdir, args.split) as (
                        port,
                        credentials,
                        gateways,
                    ):
                        profilers = []
                        if args.profile is not None:
                            for gateway in gateways:
                                name = gateway.cmdline()[-1]
                                path = args.profile / f"{name}-{args.database}-{binds}x{window}.txt"
                                profilers.append(Profiler(gateway.pid, path))
                                profilers[-1].start(TIME_LIMIT + 90)
                        results.append(
                            measured(
                                gateways,
                                run_server(
                                    port, credentials, binds, window, args.messages, args.database
                                ),
                            )
                        )
                        for profiler in profilers:
                            profiler.stop()
                finally:
                    database.drop()
                print(_line(results[-1], other="serve"), flush=True)
                if results[-1].receipts < results[-1].messages:
                    log_text = (workdir / "server.log").read_text("utf-8", "replace")
                    print(f"tidings serve's log ends:\n{log_text[-3000:]}", flush=True)
        if args.baseline:
            database = make_database(args.database, Path(tmp) / "baseline")
            database.create()
            try:
                results.append(
                    asyncio.run(run_pipeline(database.url, 0, 0, 0, args.messages, "simulator"))
                )
            finally:
                database.drop()
            print(_line(results.pop()) + "  (baseline: simulator, no SMPP)", flush=True)
    print(f"load average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    print(f"\ntarget >= {TARGET:.0f} msgs/s with receipts; cpu count {os.cpu_count()}")
    for result in results:
        reached = result.rate >= TARGET and result.receipts >= result.messages
        print(
            f"  {result.scenario:<20} {result.binds}x{result.window:<3} "
            f"{result.rate:6.0f}/s  {'reached' if reached else 'NOT reached'}"
        )
    missed = [r for r in results if r.rate < TARGET or r.receipts < r.messages]
    return 1 if args.check and missed else 0


def measured(others: Sequence[psutil.Process], run: Coroutine[Any, Any, Result]) -> Result:
    """Run one measurement; add the CPU seconds both sides spent on it (the other side: the
    SMSC, or the ``tidings`` processes when this process is the SMPP client; with more than
    one, each one's share goes into the note)."""

    def cpu(times: Any) -> float:
        return float(times.user + times.system)

    own = resource.getrusage(resource.RUSAGE_SELF)
    before = [cpu(other.cpu_times()) for other in others]
    result = asyncio.run(run)
    after = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    spent = [cpu(other.cpu_times()) - at for other, at in zip(others, before, strict=True)]
    note = result.note
    if len(others) > 1:
        seconds = result.seconds or 1.0
        shares = ", ".join(
            f"{' '.join(Path(arg).name for arg in other.cmdline()[1:])} {cpu_s / seconds:.0%}"
            for other, cpu_s in zip(others, spent, strict=True)
        )
        note = f"{note}; cpu {shares}" if note else f"cpu {shares}"
    return replace(result, own_cpu=own_cpu, smsc_cpu=sum(spent), note=note)


def _line(result: Result, other: str = "smsc") -> str:
    seconds = result.seconds or 1.0
    line = (
        f"{result.scenario:<20} binds={result.binds} window={result.window:<3} "
        f"{result.messages} msgs in {result.seconds:6.2f} s = {result.rate:6.0f} msgs/s, "
        f"receipts {result.receipts}"
    )
    if result.note:
        line = f"{line} ({result.note})"
    if not result.own_cpu:
        return line
    line = (
        f"{line}; cpu: {'bench' if other == 'serve' else 'tidings'} "
        f"{result.own_cpu / seconds:4.0%}, {other} {result.smsc_cpu / seconds:4.0%}"
    )
    if other == "serve" and result.messages:
        # Less noisy than the rate on a shared machine: what one message costs the gateway.
        line += f" = {result.smsc_cpu / result.messages * 1e6:.0f} us/msg"
    return line


if __name__ == "__main__":
    raise SystemExit(main())
