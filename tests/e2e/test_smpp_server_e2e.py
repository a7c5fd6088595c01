"""`tidings serve` with TIDINGS_SMPP_PORT: an smpplib client submits, gets a receipt back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gateway import Gateway, free_port
from tests.smpp_esme import Esme
from tidings.accounts.service import Credentials

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(database_url, tmp_path, smpp_port=str(free_port()))
    yield node
    node.stop()


async def test_smpp_client_through_serve_and_simulator(gateway: Gateway, tmp_path: Path) -> None:
    gateway.start()
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    gateway.cli("prices", "import", str(prices))
    client = gateway.cli("clients", "create", "--name", "acme", "--balance", "10")
    issued = gateway.cli("clients", "smpp-credentials", str(client["id"]))
    assert set(issued) == {"system_id", "password"}
    gateway.cli("suppliers", "create", "--name", "sim", "--kind", "simulator")
    gateway.cli("routes", "create", "--type", "sms", "--supplier", "sim")

    esme = Esme(int(gateway.env["TIDINGS_SMPP_PORT"]))
    await esme.bind(Credentials(issued["system_id"], issued["password"]))
    try:
        await esme.submit("hello through serve")
        await esme.pump(lambda: bool(esme.sent) and bool(esme.received), within=30)
    finally:
        await esme.close()
    [resp] = esme.sent
    assert resp.status == 0
    [receipt] = esme.received
    assert receipt.receipted_message_id.decode().rstrip("\0") == resp.message_id.decode()
    assert b"stat:DELIVRD" in receipt.short_message
    shown = gateway.cli("clients", "show", str(client["id"]))
    assert float(shown["balance"]) == pytest.approx(9.98)
