"""`tidings serve --processes 2`: two event loops, the work spread over them (the first
takes the requests, the second runs the lanes and sends the webhooks), one /metrics for
both, and `kill -9` of the parent takes the children with it. `tidings worker --processes 2`
spreads its loops the same way."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.gateway import TIDINGS, Gateway
from tests.e2e.test_gateway import setup_world, wait_until
from tests.support import Receiver


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(database_url, tmp_path)
    yield node
    node.stop()


def children_of(node: Gateway) -> list[psutil.Process]:
    assert node.process is not None
    return psutil.Process(node.process.pid).children(recursive=True)


def send(http: httpx.Client, reference: str) -> str:
    created = http.post(
        "/rest/sms/create",
        json={
            "destination": "phone",
            "msisdn": "380972000000",
            "reference": reference,
            "originator": "test",
            "body": "two loops",
        },
    ).json()
    assert created["error"] == "0", created
    return str(created["id"])


def test_two_processes_share_the_port_and_the_work(gateway: Gateway, tmp_path: Path) -> None:
    client = setup_world(gateway, tmp_path)
    gateway.start("--processes", "2")
    serving = [
        p
        for p in children_of(gateway)
        if "multiprocessing.resource_tracker" not in " ".join(p.cmdline())
    ]
    assert len(serving) == 2
    headers = {"X-API-KEY": client["live_key"]}
    ids = []
    # New connections each time (with three or more processes, the kernel spreads them).
    for n in range(20):
        with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=10) as http:
            ids.append(send(http, f"p{n}"))
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=10) as http:

        def all_delivered() -> bool:
            return all(http.get(f"/rest/sms/{i}").json()["status"] == "delivered" for i in ids)

        wait_until(all_delivered, timeout=60)
        # /metrics holds both processes' counters (the second's: submits, reports, webhooks).
        for _ in range(4):
            with httpx.Client(base_url=gateway.base_url, timeout=10) as fresh:
                text = fresh.get("/metrics").text
            assert 'process="0"' in text and 'process="1"' in text
            accepted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("tidings_messages_accepted_total{")
            )
            assert accepted == 20


def test_kill_9_of_serve_ends_its_children_and_a_restart_binds_again(
    gateway: Gateway, tmp_path: Path
) -> None:
    client = setup_world(gateway, tmp_path)
    gateway.start("--processes", "2")
    children = children_of(gateway)
    assert children
    gateway.kill()
    psutil.wait_procs(children, timeout=15)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    gateway.start("--processes", "2")  # the port is free again
    with httpx.Client(
        base_url=gateway.base_url, headers={"X-API-KEY": client["live_key"]}, timeout=10
    ) as http:
        message_id = send(http, "after-restart")
        wait_until(
            lambda: http.get(f"/rest/sms/{message_id}").json()["status"] == "delivered",
            timeout=60,
        )


def test_sigterm_stops_every_process(gateway: Gateway, tmp_path: Path) -> None:
    setup_world(gateway, tmp_path)
    gateway.start("--processes", "2")
    children = children_of(gateway)
    assert gateway.process is not None
    os.kill(gateway.process.pid, signal.SIGTERM)
    gateway.process.wait(timeout=30)
    started = time.monotonic()
    psutil.wait_procs(children, timeout=15)
    assert time.monotonic() - started < 15
    assert gateway.process.returncode is not None


def start_worker(gateway: Gateway, workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    with (workdir / "worker.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [TIDINGS, "worker", *args],
            env=gateway.env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_worker_processes_spread_the_loops_beside_the_api(
    gateway: Gateway, tmp_path: Path
) -> None:
    """`tidings api` + `tidings worker --processes 2`: one worker process runs the supplier
    lanes, the other sends the webhooks; every message is delivered and reported once, and
    SIGTERM to the worker stops both of its processes."""
    client = setup_world(gateway, tmp_path)
    async with Receiver() as receiver:
        gateway.cli("clients", "update", str(client["id"]), "--callback-url", receiver.url)
        await asyncio.to_thread(gateway.start, command="api")
        worker = start_worker(gateway, tmp_path, "--processes", "2")
        try:
            headers = {"X-API-KEY": client["live_key"]}
            async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers) as http:
                ids = []
                for n in range(10):
                    created = (
                        await http.post(
                            "/rest/sms/create",
                            json={
                                "destination": "phone",
                                "msisdn": "380972000000",
                                "reference": f"w{n}",
                                "originator": "test",
                                "body": "spread",
                            },
                        )
                    ).json()
                    assert created["error"] == "0", created
                    ids.append(str(created["id"]))
                deadline = time.monotonic() + 60
                while True:
                    statuses = [(await http.get(f"/rest/sms/{i}")).json()["status"] for i in ids]
                    delivered = [r for r in receiver.answered() if b"delivered" in r.body]
                    if set(statuses) == {"delivered"} and len(delivered) >= len(ids):
                        break
                    assert time.monotonic() < deadline, (statuses, len(delivered))
                    await asyncio.sleep(0.2)
            workers = [
                p
                for p in psutil.Process(worker.pid).children()
                if "multiprocessing.resource_tracker" not in " ".join(p.cmdline())
            ]
            assert len(workers) == 2
            assert all(count == 1 for count in receiver.successes_by_id().values())
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        for process in workers:
            assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
