"""Failover, circuit breakers, least-cost routing and margins, with the real `tidings serve`
over loopback: an HTTP supplier that is down (nothing listening) or a real HTTP upstream
(a seed-004 server in this process), and the built-in simulator."""

from __future__ import annotations

import asyncio
import csv
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.gateway import Gateway, free_port
from tests.e2e.test_gateway import wait_until
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.hlr.models import HlrLookup
from tidings.messages.models import Message
from tidings.messages.repository import MessageRepository
from tidings.routing.models import SupplierHealth

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"


class Upstream:
    """A seed-004 gateway on loopback: takes every message (`ok`) or refuses it for good."""

    def __init__(self, port: int, mode: str = "ok") -> None:
        self.mode = mode
        self.received: list[str] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                phones = body.get("phones", [])
                upstream.received.extend(p["msisdn"] for p in phones)
                if upstream.mode == "ok":
                    answer: dict[str, Any] = {
                        "error": "0",
                        "result": [
                            {"reference": p["reference"], "id": f"up-{p['reference']}"}
                            for p in phones
                        ],
                    }
                else:
                    answer = {"error": "7", "errorDescription": "invalid phone number"}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(database_url, tmp_path, lease_seconds="5", supplier_refresh_interval="0.5")
    yield node
    node.stop()


def two_suppliers(
    node: Gateway, tmp_path: Path, upstream_port: int, *options: str
) -> dict[str, Any]:
    """`http` (priority 10) to the upstream port, then `sim` (priority 5), both for UA."""
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    node.cli("prices", "import", str(prices))
    client = node.cli("clients", "create", "--name", "reseller", "--balance", "100")
    extra = [arg for option in options for arg in ("--option", option)]
    http = node.cli(
        "suppliers", "create", "--name", "http", "--kind", "http",
        "--option", f"url=http://127.0.0.1:{upstream_port}", "--option", "api_key=k",
        "--option", "connect_timeout=1", *extra,
    )  # fmt: skip
    sim = node.cli("suppliers", "create", "--name", "sim", "--kind", "simulator")
    for name, priority in (("http", "10"), ("sim", "5")):
        node.cli(
            "routes", "create", "--type", "sms", "--supplier", name, "--country", "UA",
            "--priority", priority,
        )  # fmt: skip
    return {"client": client, "http": http["id"], "sim": sim["id"]}


def send(node: Gateway, key: str, phones: list[str]) -> list[int]:
    with httpx.Client(base_url=node.base_url, headers={"X-API-KEY": key}, timeout=10) as http:
        answer = http.post(
            "/rest/sms/create",
            json={
                "destination": "individual",
                "phones": [
                    {"msisdn": p, "reference": f"r{p}", "originator": "test", "body": "hi"}
                    for p in phones
                ],
            },
        ).json()
    assert answer["error"] == "0", answer
    return [int(item["id"]) for item in answer["result"]]


def status_of(node: Gateway, key: str, message_id: int) -> str:
    with httpx.Client(base_url=node.base_url, headers={"X-API-KEY": key}, timeout=10) as http:
        found: str = http.get(f"/rest/sms/{message_id}").json()["status"]
    return found


async def stored(database_url: str, ids: list[int]) -> dict[int, tuple[Message, list[str]]]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            messages = (await session.execute(select(Message).where(Message.id.in_(ids)))).scalars()
            found = {}
            for message in messages:
                events = await MessageRepository(session).events(message)
                found[message.id] = (message, [f"{e.status}: {e.detail}" for e in events])
            return found
    finally:
        await engine.dispose()


async def breaker(database_url: str, supplier_id: int) -> str:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            found = await session.get(SupplierHealth, supplier_id)
            return "none" if found is None else found.state
    finally:
        await engine.dispose()


def metric(node: Gateway, supplier_id: int) -> str | None:
    text = httpx.get(f"{node.base_url}/metrics", timeout=10).text
    # With several serve processes each sample also names its process; the lanes (which set
    # this gauge) run in one of them.
    label = f'supplier_id="{supplier_id}"'
    return next(
        (
            line.rsplit(" ", 1)[1]
            for line in text.splitlines()
            if line.startswith("tidings_supplier_up{") and label in line
        ),
        None,
    )


def test_messages_fail_over_from_a_dead_http_supplier_to_the_simulator(
    gateway: Gateway, tmp_path: Path, database_url: str
) -> None:
    world = two_suppliers(gateway, tmp_path, free_port())  # nothing listens there
    gateway.start()
    key = world["client"]["live_key"]
    ids = send(gateway, key, ["380971000001", "380971000002", "380971000003"])
    wait_until(lambda: all(status_of(gateway, key, i) == "delivered" for i in ids))
    for message, history in asyncio.run(stored(database_url, ids)).values():
        assert message.supplier_id == world["sim"]
        assert history[0].startswith("queued: attempt 1 via http: ")
        assert history[0].endswith("; moved to sim")
        assert history[1:] == ["sent: None", "delivered: simulated delivered"]


def test_a_permanent_refusal_does_not_fail_over(
    gateway: Gateway, tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    upstream = Upstream(port, mode="refuse")
    try:
        world = two_suppliers(gateway, tmp_path, port)
        gateway.start()
        key = world["client"]["live_key"]
        [mid] = send(gateway, key, ["380971000009"])
        wait_until(lambda: status_of(gateway, key, mid) == "rejected")
    finally:
        upstream.close()
    [(message, history)] = asyncio.run(stored(database_url, [mid])).values()
    assert message.supplier_id == world["http"]
    assert history == ["rejected: upstream error 7: invalid phone number"]
    assert upstream.received == ["380971000009"]


def test_five_failures_in_a_row_take_a_supplier_out_until_its_cool_down(
    gateway: Gateway, tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    world = two_suppliers(gateway, tmp_path, port, "breaker_cooldown=60")
    gateway.start()
    key = world["client"]["live_key"]
    client_id = str(world["client"]["id"])
    ids = send(gateway, key, [f"38097100001{i}" for i in range(5)])
    wait_until(lambda: all(status_of(gateway, key, i) == "delivered" for i in ids))

    def explained() -> dict[str, Any]:
        found: dict[str, Any] = gateway.cli(
            "routes", "explain", "--client", client_id, "--msisdn", "380971000020"
        )
        return found

    wait_until(lambda: metric(gateway, world["http"]) == "0.0", timeout=10)
    # While it is out, new messages go straight to the simulator: one attempt, no failover.
    [direct] = send(gateway, key, ["380971000021"])
    assert asyncio.run(breaker(database_url, world["http"])) == "open"
    wait_until(lambda: status_of(gateway, key, direct) == "delivered")
    [(message, history)] = asyncio.run(stored(database_url, [direct])).values()
    assert message.supplier_id == world["sim"] and not history[0].startswith("queued")
    # The upstream comes back; after the cool-down a probe finds it and it is back in routing.
    upstream = Upstream(port)
    try:
        deadline = time.monotonic() + 150
        while asyncio.run(breaker(database_url, world["http"])) != "closed":
            assert time.monotonic() < deadline, "the breaker did not close"
            send(gateway, key, [f"3809720{int(time.monotonic() * 1000) % 100000:05d}"])
            time.sleep(0.5)
        assert upstream.received
        wait_until(lambda: metric(gateway, world["http"]) == "1.0", timeout=10)
        preview = explained()
        assert preview["chosen"] == "http" and preview["candidates"][0]["health"] == "closed"
        assert [c["supplier"] for c in preview["candidates"]] == ["http", "sim"]
    finally:
        upstream.close()


KYIVSTAR_PORTED = "380971111111"


async def cache_hlr_result(database_url: str, client_id: int, msisdn: str, network: str) -> None:
    engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            now = datetime.now(UTC)
            session.add(
                HlrLookup(
                    client_id=client_id, msisdn=msisdn, country="UA", reference="hlr1",
                    tariff=0, price=Decimal("0.002"), currency="EUR", source="api",
                    status="active", network=network, ported=True, roaming=False,
                    created_at=now, status_at=now, attempts=0,
                )
            )  # fmt: skip
    finally:
        await engine.dispose()


def test_least_cost_routing_by_network_and_margins_that_sum_exactly(
    gateway: Gateway, tmp_path: Path, database_url: str
) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    gateway.cli("prices", "import", str(prices))
    client = gateway.cli("clients", "create", "--name", "reseller", "--balance", "100")
    ids = {}
    for name in ("a", "b"):
        ids[name] = gateway.cli("suppliers", "create", "--name", name, "--kind", "simulator")["id"]
        gateway.cli(
            "routes", "create", "--type", "sms", "--supplier", name, "--country", "UA",
            "--strategy", "lcr", "--hlr-routing",
        )  # fmt: skip
    costs = tmp_path / "costs.csv"
    costs.write_text(
        "supplier,type,country,mcc,mnc,cost,currency\n"
        "a,sms,UA,255,03,0.010,EUR\nb,sms,UA,255,03,0.008,EUR\n"
        "a,sms,UA,255,01,0.0045,USD\nb,sms,UA,255,01,0.007,EUR\n"
    )
    assert gateway.cli("costs", "import", str(costs)) == {"imported": 4}
    assert gateway.cli("fx", "set", "EUR", "USD", "1.08")["rate"] == "1.08"
    # A cached HLR result: this Kyivstar-range number now lives on Vodafone UA (25501).
    asyncio.run(cache_hlr_result(database_url, client["id"], KYIVSTAR_PORTED, "25501"))
    gateway.start()
    key = client["live_key"]
    numbers = ["380972000001", "380972000002", KYIVSTAR_PORTED]
    sent = send(gateway, key, numbers)
    wait_until(lambda: all(status_of(gateway, key, i) == "delivered" for i in sent))
    messages = {m.msisdn: m for m, _ in asyncio.run(stored(database_url, sent)).values()}
    assert messages["380972000001"].supplier_id == ids["b"]  # 0.008 < 0.010 on Kyivstar
    assert messages["380972000001"].cost == Decimal("0.008")
    ported = messages[KYIVSTAR_PORTED]
    assert ported.supplier_id == ids["a"]  # 0.0045 USD = 0.004167 EUR < 0.007 on Vodafone
    assert ported.cost == Decimal("0.004167") and ported.cost_currency == "EUR"

    day = datetime.now(UTC).date()
    out = tmp_path / "margins.csv"
    report = gateway.cli(
        "report", "margins", "--from", str(day), "--to", str(day + timedelta(days=1)),
        "--by", "supplier", "--csv", str(out),
    )  # fmt: skip
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and report["csv"]["messages"] == 3
    assert {"cost", "margin", "supplier"} <= set(rows[0])
    exported_cost = sum((Decimal(r["cost"]) for r in rows), Decimal(0))
    exported_margin = sum((Decimal(r["margin"]) for r in rows), Decimal(0))
    assert exported_cost == sum((Decimal(r["cost"]) for r in report["rows"]), Decimal(0))
    assert exported_margin == sum((Decimal(r["margin"]) for r in report["rows"]), Decimal(0))
    assert exported_cost == Decimal("0.008") * 2 + Decimal("0.004167")
    assert exported_margin == Decimal("0.06") - exported_cost
    # The client's own view has neither supplier nor cost.
    with httpx.Client(base_url=gateway.base_url, headers={"X-API-KEY": key}) as http:
        view = http.get(f"/rest/sms/{sent[0]}").json()
    assert not {"cost", "supplier", "supplier_id", "margin"} & set(view)
