"""Inbound end to end: a third-party SMSC (smpp34) sends an MO to `tidings serve`'s SMPP
connector; the client's mo_url gets it signed, `GET /rest/sms/inbound` lists it, the client's
receiver bind on the SMPP server gets it as a deliver_sm, and the MO sent again is one row."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import smpp34
import smpplib.exceptions

from tests.e2e.gateway import Gateway, free_port
from tests.smpp_esme import Esme
from tests.support import Receiver
from tidings.accounts.service import Credentials
from tidings.webhooks.signing import verify


class Smsc:
    """smpp34's SMSC (not Tidings' code): takes binds, hands out the bound ESMEs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = smpp34.Server(host="127.0.0.1", port=self.port, system_id="ThirdParty")
        self.esmes: asyncio.Queue[smpp34.Esme] = asyncio.Queue()
        self.submits: asyncio.Queue[smpp34.SubmitSmEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                await self.esmes.put(event)
            elif isinstance(event, smpp34.SubmitSmEvent):
                event.accept(message_id=f"c{self.submits.qsize() + 1}")
                await self.submits.put(event)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.stop(), 5)


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(
        database_url, tmp_path, smpp_port=str(free_port()), supplier_refresh_interval="1"
    )
    yield node
    node.stop()


@pytest.fixture
async def smsc() -> AsyncIterator[Smsc]:
    server = Smsc()
    await server.start()
    yield server
    await server.stop()


async def _until(condition: object, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _bound_receiver(port: int, credentials: Credentials) -> Esme:
    """A receiver bind, once the SMPP server listens (it may start just after /health)."""
    for _ in range(100):
        esme = Esme(port)
        try:
            await esme.bind(credentials, mode="receiver")
            return esme
        except smpplib.exceptions.ConnectionError:
            esme.client.disconnect()  # smpplib keeps the refused socket open
            await asyncio.sleep(0.1)
    raise AssertionError("the SMPP server does not listen")


async def test_mo_from_an_smsc_reaches_webhook_rest_and_smpp_client(
    gateway: Gateway, smsc: Smsc
) -> None:
    async with Receiver() as receiver:
        client = gateway.cli("clients", "create", "--name", "acme", "--balance", "10")
        client_id = str(client["id"])
        updated = gateway.cli("clients", "update", client_id, "--mo-url", receiver.url)
        assert updated["mo_url"] == receiver.url
        secret = gateway.cli("clients", "webhook-secret", client_id)["secret"]
        issued = gateway.cli("clients", "smpp-credentials", client_id)
        gateway.cli(
            "suppliers", "create", "--name", "smsc", "--kind", "smpp",
            "--option", "host=127.0.0.1", "--option", f"port={smsc.port}",
            "--option", "system_id=tidings", "--option", "password=secret",
        )  # fmt: skip
        assigned = gateway.cli("numbers", "assign", client_id, "4567", "--supplier", "smsc")
        assert assigned["number"] == "4567" and assigned["client_id"] == client["id"]
        gateway.start()

        # The client is bound to Tidings' SMPP server as a receiver before the MO comes.
        esme = await _bound_receiver(
            int(gateway.env["TIDINGS_SMPP_PORT"]),
            Credentials(issued["system_id"], issued["password"]),
        )
        try:
            bound = await asyncio.wait_for(smsc.esmes.get(), 30)  # Tidings' connector
            answer = await bound.deliver_sm(
                "4567", b"Hello from a handset", source_addr="380971234567", esm_class=0
            )
            assert answer.command_status == 0
            # The SMSC lost our answer and sends the same MO again: still one message.
            again = await bound.deliver_sm(
                "4567", b"Hello from a handset", source_addr="380971234567", esm_class=0
            )
            assert again.command_status == 0

            await _until(lambda: receiver.answered())
            [hook] = receiver.answered()
            verify(secret, hook.headers, hook.body, now=datetime.now(UTC))
            body = orjson.loads(hook.body)
            assert (body["sender"], body["recipient"], body["text"]) == (
                "380971234567",
                "4567",
                "Hello from a handset",
            )

            await esme.pump(lambda: bool(esme.received), within=30)
            [delivered] = esme.received
            assert delivered.esm_class == 0
            assert delivered.short_message == b"Hello from a handset"
            assert delivered.source_addr == b"380971234567"
            assert delivered.destination_addr == b"4567"
        finally:
            await esme.close()

        key = {"X-API-KEY": client["live_key"]}
        async with httpx.AsyncClient(base_url=gateway.base_url, headers=key) as api:
            listed = (await api.get("/rest/sms/inbound")).json()
        assert [m["text"] for m in listed["inbound"]] == ["Hello from a handset"]
        assert listed["inbound"][0]["id"] == body["id"]
        assert gateway.cli("numbers", "inbound")[0]["client_id"] == client["id"]
        await asyncio.sleep(0.5)  # nothing more comes for the repeat
        assert len(receiver.answered()) == 1


async def test_stop_from_a_handset_opts_out_confirms_and_refuses_the_next_send(
    gateway: Gateway, smsc: Smsc
) -> None:
    """Issue 16's opt-out, end to end: STOP by deliver_sm puts the sender on the client's
    list; the client's confirmation goes back from the number that got the STOP, through
    that SMSC; the next send to the number is refused with 33 and costs nothing; START
    lets it through again."""
    handset = "380971234567"
    gateway.import_prices("type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n")
    client = gateway.cli("clients", "create", "--name", "acme", "--balance", "10")
    client_id = str(client["id"])
    gateway.cli(
        "clients", "update", client_id,
        "--optout-confirmation", "You will get no more messages. START to undo.",
    )  # fmt: skip
    gateway.cli(
        "suppliers", "create", "--name", "smsc", "--kind", "smpp",
        "--option", "host=127.0.0.1", "--option", f"port={smsc.port}",
        "--option", "system_id=tidings", "--option", "password=secret",
    )  # fmt: skip
    gateway.cli("routes", "create", "--type", "sms", "--supplier", "smsc")
    gateway.cli("numbers", "assign", client_id, "4567", "--supplier", "smsc")
    gateway.start()
    bound = await asyncio.wait_for(smsc.esmes.get(), 30)

    stop = await bound.deliver_sm("4567", b"Stop.", source_addr=handset, esm_class=0)
    assert stop.command_status == 0
    confirmation = await asyncio.wait_for(smsc.submits.get(), 30)
    assert confirmation.short_message == b"You will get no more messages. START to undo."
    assert (confirmation.source_addr, confirmation.destination_addr) == ("4567", handset)
    listed = gateway.cli("optout", "list", client_id)
    assert [(entry["msisdn"], entry["source"]) for entry in listed] == [(handset, "keyword")]

    balance = gateway.cli("clients", "show", client_id)["balance"]
    key = {"X-API-KEY": client["live_key"]}
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=key) as api:
        sms = {"destination": "phone", "msisdn": handset, "originator": "shop"}
        refused = await api.post(
            "/rest/sms/create", json={**sms, "reference": "sale-1", "body": "Sale!"}
        )
        assert refused.json()["error"] == "33"
        assert gateway.cli("clients", "show", client_id)["balance"] == balance

        start = await bound.deliver_sm("4567", b"START", source_addr=handset, esm_class=0)
        assert start.command_status == 0
        await _until(lambda: not gateway.cli("optout", "list", client_id))
        sent = await api.post(
            "/rest/sms/create", json={**sms, "reference": "back-1", "body": "Welcome back"}
        )
        assert sent.json()["error"] == "0"
    again = await asyncio.wait_for(smsc.submits.get(), 30)
    assert again.short_message == b"Welcome back"
