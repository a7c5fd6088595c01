"""Viber end to end: `tidings serve` as a subprocess, the Viber simulator, the SMS fallback,
webhooks to a receiver on loopback — set up with the admin CLI as an operator would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.gateway import Gateway
from tests.support import Receiver

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\nviber,0,UA,0.01,EUR\n"
VIBER_USER = "380972000001"
NOT_A_USER = "380972000002"


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(database_url, tmp_path, sweep_interval="0.5", webhook_timeout="2")
    yield node
    node.stop()


def set_up(node: Gateway, tmp_path: Path, callback_url: str) -> tuple[int, str]:
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    node.cli("prices", "import", str(prices))
    client = node.cli("clients", "create", "--name", "acme", "--balance", "10")
    node.cli("clients", "update", str(client["id"]), "--callback-url", callback_url)
    node.cli("suppliers", "create", "--name", "sms-sim", "--kind", "simulator")
    node.cli(
        "suppliers",
        "create",
        "--name",
        "viber-sim",
        "--kind",
        "viber_simulator",
        "--option",
        f"non_users={NOT_A_USER}",
        "--option",
        "read_ratio=1",
        "--option",
        "dlr_delay_ms=50",
    )
    node.cli("routes", "create", "--type", "sms", "--supplier", "sms-sim")
    node.cli("routes", "create", "--type", "viber", "--supplier", "viber-sim")
    added = node.cli("clients", "viber-sender-add", str(client["id"]), "My Company")
    assert added == {"client_id": client["id"], "alpha_name": "My Company"}
    assert node.cli("clients", "viber-senders", str(client["id"]))[0]["alpha_name"] == "My Company"
    return int(client["id"]), str(client["live_key"])


async def wait_for(check: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError("timed out")


async def test_viber_delivery_read_receipt_and_sms_fallback_through_serve(
    gateway: Gateway, tmp_path: Path
) -> None:
    async with Receiver() as receiver:
        _, live_key = set_up(gateway, tmp_path, receiver.url)
        gateway.start()
        headers = {"X-API-KEY": live_key}
        request = {
            "validity": 3600,
            "messages": [
                {
                    "to": [
                        {"msisdn": VIBER_USER, "external_id": "e2e_1"},
                        {"msisdn": NOT_A_USER, "external_id": "e2e_2"},
                    ],
                    "text": "Hello over Viber",
                    "alpha_name": "My Company",
                    "options": {"sms": {"text": "Hello over SMS", "originator": "MyShop"}},
                }
            ],
        }
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            unregistered = await http.put(
                "/rest/viber/create",
                headers=headers,
                json={"messages": [{**request["messages"][0], "alpha_name": "Other"}]},
            )
            assert unregistered.json()["error"] == "45"
            [created] = (await http.put("/rest/viber/create", headers=headers, json=request)).json()
            assert created["error"] == "0" and created["total_price"] == "0.02"
            reader, fallen = (m["id"] for m in created["messages"])

            async def settled() -> list[dict[str, Any]] | None:
                answers = [
                    (await http.get(f"/rest/viber/{mid}", headers=headers)).json()
                    for mid in (reader, fallen)
                ]
                done = (
                    answers[0]["status"] == "read"
                    and answers[1].get("alternativeSMS", {}).get("status") == "delivered"
                )
                return answers if done else None

            read, not_user = await wait_for(settled)
        assert read["reference"] == "e2e_1" and "alternativeSMS" not in read
        assert not_user["status"] == "not-viber-user"
        sms_id = not_user["alternativeSMS"]["id"]
        assert not_user["alternativeSMS"]["originator"] == "MyShop"

        def pushed() -> list[tuple[str, str]]:
            bodies = [orjson.loads(r.body) for r in receiver.requests if r.status == 200]
            return [(b["id"], b["status"]) for b in bodies]

        async def all_pushed() -> bool:
            return {(fallen, "not-viber-user"), (sms_id, "delivered"), (reader, "read")} <= set(
                pushed()
            )

        await wait_for(all_pushed)
        # In order per message, each leg on its own.
        assert [s for mid, s in pushed() if mid == reader] == ["sent", "delivered", "read"]
        assert [s for mid, s in pushed() if mid == fallen] == ["sent", "not-viber-user"]
        assert [s for mid, s in pushed() if mid == sms_id] == ["sent", "delivered"]


async def test_the_demo_sends_viber_with_a_fallback_out_of_the_box(gateway: Gateway) -> None:
    """The curl lines `tidings serve --demo` prints work as printed."""
    gateway.start("--demo")
    log = (gateway.workdir / "serve.log").read_text()
    key = log.split("live key: ", 1)[1].split()[0]
    body = log.split("/rest/viber/create", 1)[1].split("-d '", 1)[1].split("'\n", 1)[0]
    headers = {"X-API-KEY": key, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        [created] = (await http.post("/rest/viber/create", content=body, headers=headers)).json()
        assert created["error"] == "0", created

        async def fell_back() -> dict[str, Any] | None:
            status: dict[str, Any] = (
                await http.get("/rest/viber/reference/demoviber1", headers=headers)
            ).json()
            alternative = status.get("alternativeSMS") or {}
            final = alternative.get("status") not in (None, "accepted", "sent", "unknown")
            return status if final else None

        status = await wait_for(fell_back)
    assert status["status"] == "not-viber-user"
    assert status["alternativeSMS"]["originator"] == "Tidings"
