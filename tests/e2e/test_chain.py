"""Two Tidings chained on loopback: A's HTTP supplier is B; B's reports come back to A.

client ──> A (/rest/sms/create) ──http connector──> B (/rest/sms/create) ──> B's simulator
client <── A's webhook <── A (/api/dlr) <── B's smartswitch-format webhook <── B's report
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.gateway import Gateway, two_nodes
from tests.support import Receiver

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"


@pytest.fixture
def nodes(database_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, Gateway]]:
    """A on the database under test; B, the upstream, on its own SQLite file."""
    with two_nodes(database_url, tmp_path, sweep_interval="0.5") as pair:
        yield pair


async def test_status_flows_back_through_the_chain(
    nodes: tuple[Gateway, Gateway],
) -> None:
    a, b = nodes
    async with Receiver() as receiver:
        # B: an ordinary gateway with a simulator, and A as its client.
        b.start()
        b.import_prices(PRICES)
        b.cli(
            "suppliers",
            "create",
            "--name",
            "sim",
            "--kind",
            "simulator",
            "--option",
            "dlr_delay_ms=50",
        )
        b.cli("routes", "create", "--type", "sms", "--supplier", "sim")
        a_at_b = b.cli("clients", "create", "--name", "tidings-a", "--balance", "100")

        # A: B is its supplier; A's client reports to the receiver.
        a.start()
        a.import_prices(PRICES)
        upstream = a.cli(
            "suppliers",
            "create",
            "--name",
            "b",
            "--kind",
            "http",
            "--option",
            f"url={b.base_url}",
            "--option",
            f"api_key={a_at_b['live_key']}",
        )
        assert set(upstream) == {"id", "dlr_login", "dlr_password"}
        a.cli("routes", "create", "--type", "sms", "--supplier", "b")
        client = a.cli("clients", "create", "--name", "acme", "--balance", "10")
        a.cli("clients", "update", str(client["id"]), "--callback-url", receiver.url)

        # B reports to A's /api/dlr in the Smartswitch format with A's DLR credentials.
        b.cli(
            "clients",
            "update",
            str(a_at_b["id"]),
            "--callback-url",
            f"{a.base_url}/api/dlr",
            "--webhook-format",
            "smartswitch",
            "--webhook-login",
            upstream["dlr_login"],
            "--webhook-password",
            upstream["dlr_password"],
        )

        async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
            headers = {"X-API-KEY": client["live_key"]}
            created = (
                await http.post(
                    "/rest/sms/create",
                    headers=headers,
                    json={
                        "destination": "phone",
                        "msisdn": "380972000000",
                        "reference": "chain1",
                        "originator": "test",
                        "body": "through two gateways",
                    },
                )
            ).json()
            assert created["error"] == "0", created
            status = {}
            for _ in range(300):
                status = (await http.get(f"/rest/sms/{created['id']}", headers=headers)).json()
                if status["status"] == "delivered":
                    break
                await asyncio.sleep(0.1)
            assert status["status"] == "delivered", status

        # B stored the message once, under A's reference, and delivered it.
        async with httpx.AsyncClient(base_url=b.base_url, timeout=10) as http:
            upstream_view = (
                await http.get(
                    f"/rest/sms/reference/T{created['id']}",
                    headers={"X-API-KEY": a_at_b["live_key"]},
                )
            ).json()
        assert upstream_view["status"] == "delivered"
        assert upstream_view["msisdn"] == "380972000000"

        # A's client heard "sent" then "delivered", in order.
        for _ in range(100):
            seen = [orjson.loads(r.body)["status"] for r in receiver.requests]
            if "delivered" in seen:
                break
            await asyncio.sleep(0.1)
        assert seen[-1] == "delivered" and seen.index("sent") < seen.index("delivered")
