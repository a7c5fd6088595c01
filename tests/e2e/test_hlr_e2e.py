"""One Tidings querying another over HTTP for HLR lookups, both real `tidings serve` processes.

client ──> A (/hlr/create, multipart) ──hlr_http──> B (/hlr/create) ──> B's HLR simulator
client <── A's callback <── A (polls B's /hlr/{id} until the result is final)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.gateway import Gateway, two_nodes
from tests.support import Received, Receiver

PRICES = "type,tariff,country,price,currency\nhlr,0,UA,0.002,EUR\nhlr,0,PL,0.003,EUR\n"
NUMBERS = ["380505142320", "380972920000", "380932990000", "48501234567"]


@pytest.fixture
def nodes(database_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, Gateway]]:
    """A on the database under test; B, the upstream, on its own SQLite file."""
    with two_nodes(database_url, tmp_path) as pair:
        yield pair


async def test_a_lookup_through_another_tidings(nodes: tuple[Gateway, Gateway]) -> None:
    a, b = nodes
    all_pushed = asyncio.Event()

    async def respond(_: Received, number: int) -> tuple[int, bytes]:
        if number >= len(NUMBERS):
            all_pushed.set()
        return 200, b"ok"

    async with Receiver(respond=respond) as receiver:
        b.start()
        b.import_prices(PRICES)
        b.cli("suppliers", "create", "--name", "hlr-sim", "--kind", "hlr_simulator")
        b.cli("routes", "create", "--type", "hlr", "--supplier", "hlr-sim")
        a_at_b = b.cli("clients", "create", "--name", "tidings-a", "--balance", "1")

        a.start()
        a.import_prices(PRICES)
        a.cli(
            "suppliers",
            "create",
            "--name",
            "b",
            "--kind",
            "hlr_http",
            "--option",
            f"url={b.base_url}",
            "--option",
            f"api_key={a_at_b['live_key']}",
        )
        a.cli("routes", "create", "--type", "hlr", "--supplier", "b")
        client = a.cli(
            "clients", "create", "--name", "acme", "--balance", "1", "--callback-url", receiver.url
        )

        async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
            payload = [{"msisdn": n, "reference": f"r{i}"} for i, n in enumerate(NUMBERS)]
            created = await http.post(
                "/hlr/create",
                headers={"X-API-KEY": client["live_key"]},
                files={"payload": (None, orjson.dumps(payload).decode())},
            )
            assert created.status_code == 200, created.text
            assert created.json()["totalprice"] == "0.009"
            ids = [item["id"] for item in created.json()["result"]]

            await asyncio.wait_for(all_pushed.wait(), timeout=30)
            pushed = {orjson.loads(r.body)["id"]: orjson.loads(r.body) for r in receiver.requests}
            assert set(pushed) == set(ids)

            async with httpx.AsyncClient(base_url=b.base_url, timeout=10) as upstream:
                for lookup_id, number in zip(ids, NUMBERS, strict=True):
                    ours = (
                        await http.get(
                            f"/hlr/{lookup_id}", headers={"X-API-KEY": client["live_key"]}
                        )
                    ).json()
                    assert ours == pushed[lookup_id]
                    assert ours["msisdn"] == number and ours["status"] != "sent"
                    # B's own record of the query A made for this lookup says the same.
                    theirs = (
                        await upstream.get(
                            f"/hlr/reference/H{lookup_id}",
                            headers={"X-API-KEY": a_at_b["live_key"]},
                        )
                    ).json()
                    assert (theirs["msisdn"], theirs["status"], theirs["network"]) == (
                        number,
                        ours["status"],
                        ours["network"],
                    )
                    assert theirs["details"] == ours["details"]
        # A paid B for four lookups, and the client paid A.
        assert Decimal(a.cli("clients", "show", str(client["id"]))["balance"]) == Decimal("0.991")
        assert Decimal(b.cli("clients", "show", str(a_at_b["id"]))["balance"]) == Decimal("0.991")


async def test_the_demo_answers_hlr_lookups_out_of_the_box(
    nodes: tuple[Gateway, Gateway],
) -> None:
    a, _ = nodes
    a.start("--demo")
    log = (a.workdir / "serve.log").read_text()
    key = log.split("live key: ", 1)[1].split()[0]
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
        created = await http.put(
            "/hlr/create",
            headers={"X-API-KEY": key},
            files={"msisdn": (None, "380505142320"), "reference": (None, "hlr1")},
        )
        assert created.json()["error"] == "0", created.text
        result: dict[str, object] = {"status": "sent"}
        for _ in range(100):  # the in-process worker answers within a poll or two
            result = (await http.get("/hlr/reference/hlr1", headers={"X-API-KEY": key})).json()
            if result["status"] != "sent":
                break
            await asyncio.sleep(0.1)
    assert result["status"] == "active" and result["network"] == "25501"
