"""The ESME session and the connector without a database: binds, keep-alive, faults, TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tidings.clock import SystemClock
from tidings.connectors.base import OutboundMessage, SubmitResult, SupplierReport
from tidings.connectors.smpp.connector import SmppConnector, parse_options, smpp_validity
from tidings.connectors.smpp.pdu import (
    BindTransceiverResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode,
    encode,
)
from tidings.connectors.smpp.receipts import canonical_id
from tidings.connectors.smpp.session import (
    EsmeSession,
    Link,
    SessionConfig,
    Unacknowledged,
)
from tidings.connectors.smpp.smsc import Smsc, SmscConfig
from tidings.errors import ConfigurationError
from tidings.messages.encoding import segment
from tidings.messages.status import Status

FAST = {"reconnect_delay": 0.05, "reconnect_max": 0.1, "bind_wait": 2, "response_timeout": 2}


def options(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "tidings",
        "password": "secret",
        **FAST,
        **extra,
    }


def outbound(message_id: int, body: str = "hello", msisdn: str = "380971234567") -> OutboundMessage:
    seg = segment(body)
    return OutboundMessage(
        message_id,
        msisdn,
        "Tidings",
        body,
        seg.encoding.value,
        seg.parts,
        datetime.now(UTC) + timedelta(hours=1),
    )


class Collect:
    def __init__(self) -> None:
        self.reports: list[SupplierReport] = []

    async def __call__(self, _supplier: int, reports: Sequence[SupplierReport]) -> None:
        self.reports.extend(reports)

    async def wait(self, count: int, seconds: float = 5) -> list[SupplierReport]:
        for _ in range(int(seconds * 100)):
            if len(self.reports) >= count:
                break
            await asyncio.sleep(0.01)
        return self.reports


# --- a scripted SMSC: raw PDUs, for what the test SMSC does not do ----------------------

Script = Callable[[Pdu, asyncio.StreamWriter], Awaitable[None]]


async def scripted(script: Script) -> tuple[asyncio.Server, int, list[Pdu]]:
    seen: list[Pdu] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1000):
                head = await reader.readexactly(4)
                pdu = decode(head + await reader.readexactly(int.from_bytes(head, "big") - 4))
                seen.append(pdu)
                await script(pdu, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def config(port: int, **extra: Any) -> SessionConfig:
    settings = {"reconnect_delay": 0.05, "unbind_timeout": 0.3, **extra}
    return SessionConfig("127.0.0.1", port, "tidings", "secret", **settings)


async def no_deliveries(_link: Link, _pdu: object) -> int:
    return 0


async def test_answers_the_smsc_and_survives_its_unbind() -> None:
    answers: list[Pdu] = []
    connections = {"n": 0}

    async def script(pdu: Pdu, writer: asyncio.StreamWriter) -> None:
        if pdu.name == "bind_transceiver":
            connections["n"] += 1
            writer.write(encode(BindTransceiverResp(pdu.sequence_number, system_id="S")))
            if connections["n"] == 1:
                writer.write(encode(EnquireLink(100)))
                writer.write(encode(UnknownPdu(sequence_number=101, command_id=0x21)))
                writer.write(encode(Unbind(102)))
        elif pdu.command_id & 0x80000000:
            answers.append(pdu)

    server, port, _ = await scripted(script)
    session = EsmeSession(config(port), no_deliveries)
    session.start()
    try:
        for _ in range(200):
            if session.binds >= 2:
                break
            await asyncio.sleep(0.01)
        assert session.binds == 2  # bound again after the SMSC's unbind
        assert answers[:3] == [
            EnquireLinkResp(100),
            GenericNack(101, CommandStatus.ESME_RINVCMDID),
            UnbindResp(102),
        ]
    finally:
        await session.stop()
        server.close()


async def test_keep_alive_and_stale_link() -> None:
    silent = {"on": False}

    async def script(pdu: Pdu, writer: asyncio.StreamWriter) -> None:
        if pdu.name == "bind_transceiver":
            writer.write(encode(BindTransceiverResp(pdu.sequence_number)))
        elif isinstance(pdu, EnquireLink) and not silent["on"]:
            writer.write(encode(EnquireLinkResp(pdu.sequence_number)))

    server, port, seen = await scripted(script)
    session = EsmeSession(
        config(port, enquire_link_interval=0.05, response_timeout=0.2, unbind_timeout=0.2),
        no_deliveries,
    )
    session.start()
    try:
        assert await session.wait_bound(2)
        await asyncio.sleep(0.2)
        assert sum(isinstance(p, EnquireLink) for p in seen) >= 2
        silent["on"] = True  # enquire_link unanswered: the link is dropped and made again
        for _ in range(200):
            if session.binds >= 2:
                break
            await asyncio.sleep(0.01)
        assert session.binds >= 2
        link = session.link
        assert link is not None
        with pytest.raises(Unacknowledged):
            await link.request(EnquireLink())
    finally:
        started = time.monotonic()
        await session.stop()  # the SMSC never answers unbind: stop does not hang
        assert time.monotonic() - started < 2
        server.close()


async def test_deliver_sm_is_answered_after_the_handler() -> None:
    answered: list[Pdu] = []
    release = asyncio.Event()

    async def script(pdu: Pdu, writer: asyncio.StreamWriter) -> None:
        if pdu.name == "bind_transceiver":
            writer.write(encode(BindTransceiverResp(pdu.sequence_number)))
            writer.write(encode(DeliverSm(7, esm_class=4, short_message=b"id:1 stat:DELIVRD")))
        elif isinstance(pdu, DeliverSmResp):
            answered.append(pdu)

    async def handler(_link: Link, _pdu: object) -> int:
        await release.wait()
        return CommandStatus.ESME_RX_T_APPN

    server, port, _ = await scripted(script)
    session = EsmeSession(config(port), handler)
    session.start()
    try:
        assert await session.wait_bound(2)
        await asyncio.sleep(0.1)
        assert answered == []  # not before the receipt is stored
        release.set()
        for _ in range(100):
            if answered:
                break
            await asyncio.sleep(0.01)
        assert answered == [DeliverSmResp(7, CommandStatus.ESME_RX_T_APPN)]
    finally:
        await session.stop()
        server.close()


async def test_transmitter_and_receiver_binds() -> None:
    async with Smsc() as smsc:
        sink = Collect()
        connector = SmppConnector(
            1,
            options(smsc.port, bind_mode="transmitter_receiver", binds=2, receiver_binds=1),
            SystemClock(),
        )
        await connector.start(sink)
        try:
            outcomes = await connector.submit([outbound(i) for i in range(1, 11)])
            assert {o.result for o in outcomes} == {SubmitResult.ACCEPTED}
            reports = await sink.wait(10)
            assert {r.status for r in reports} == {Status.DELIVERED}
            modes = sorted(s.config.mode.value for s in connector.sessions)
            assert modes == ["receiver", "transmitter", "transmitter"]
        finally:
            await connector.stop()
        assert smsc.binds == 3 and smsc.unbinds == 3


async def test_long_message_outcome_carries_every_part_id_and_each_part_reports() -> None:
    """The connector keeps no part memory: the outcome names every part (the delivery domain
    stores them), and each part's receipt is reported under that part's own id."""
    async with Smsc() as smsc:
        sink = Collect()
        connector = SmppConnector(1, options(smsc.port), SystemClock())
        await connector.start(sink)
        try:
            [outcome] = await connector.submit([outbound(5, "z" * 400)])
            reports = await sink.wait(3)
        finally:
            await connector.stop()
        ids = [canonical_id(s.message_id) for s in smsc.submitted]
        assert len(ids) == 3 and outcome.supplier_message_id == ids[0]
        assert outcome.part_ids == tuple(ids)
        assert sorted((r.supplier_message_id, r.status) for r in reports) == sorted(
            (i, Status.DELIVERED) for i in ids
        )


async def test_single_part_outcome_has_no_part_ids() -> None:
    async with Smsc(SmscConfig(receipts=False)) as smsc:
        connector = SmppConnector(1, options(smsc.port), SystemClock())
        await connector.start(Collect())
        try:
            [outcome] = await connector.submit([outbound(6)])
        finally:
            await connector.stop()
        assert outcome.result is SubmitResult.ACCEPTED and outcome.part_ids == ()


async def test_part_receipts_before_their_answers_on_a_receiver_bind() -> None:
    """A receipt can overtake its submit_sm_resp when it comes on another bind: it is
    reported as it comes (the database matches it once the answer is recorded)."""
    async with Smsc(SmscConfig(receipt_before_resp=True)) as smsc:
        sink = Collect()
        connector = SmppConnector(
            1, options(smsc.port, bind_mode="transmitter_receiver"), SystemClock()
        )
        await connector.start(sink)
        try:
            for session in connector.sessions:
                assert await session.wait_bound(2)
            [outcome] = await connector.submit([outbound(9, "q" * 200)])
            reports = await sink.wait(2)
        finally:
            await connector.stop()
        ids = [canonical_id(s.message_id) for s in smsc.submitted]
        assert outcome.part_ids == tuple(ids)
        assert sorted((r.supplier_message_id, r.status) for r in reports) == sorted(
            (i, Status.DELIVERED) for i in ids
        )


async def test_mo_is_acknowledged_counted_and_not_reported() -> None:
    async with Smsc(SmscConfig(receipts=False)) as smsc:
        sink = Collect()
        connector = SmppConnector(1, options(smsc.port), SystemClock())
        await connector.start(sink)
        try:
            assert await connector.sessions[0].wait_bound(2)
            smsc.send_mo("380971234567", "Tidings", b"hello")
            smsc.send_mo("380971234568", "Tidings", b"again")
            for _ in range(500):
                if smsc.receipts_acked == 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            await connector.stop()
        assert smsc.receipts_acked == 2  # both answered ESME_ROK
        assert connector.stats["mo"] == 2 and sink.reports == []


async def test_unsendable_messages_are_rejected_before_sending() -> None:
    async with Smsc() as smsc:
        connector = SmppConnector(1, options(smsc.port), SystemClock())
        await connector.start(Collect())
        try:
            bad_sender = outbound(1)
            bad_sender = OutboundMessage(**{**_fields(bad_sender), "originator": "Café"})
            too_long = OutboundMessage(**{**_fields(outbound(2)), "msisdn": "1" * 21})
            lone = OutboundMessage(**{**_fields(outbound(3)), "body": "x\ud800"})
            outcomes = await connector.submit([bad_sender, too_long, lone, outbound(4)])
        finally:
            await connector.stop()
        by_id = {o.message_id: o for o in outcomes}
        assert [by_id[i].result for i in (1, 2, 3, 4)] == [
            SubmitResult.REJECTED,
            SubmitResult.REJECTED,
            SubmitResult.REJECTED,
            SubmitResult.ACCEPTED,
        ]
        assert "not ASCII" in (by_id[1].error or "")
        assert len(smsc.submitted) == 1


def _fields(message: OutboundMessage) -> dict[str, Any]:
    return {f: getattr(message, f) for f in OutboundMessage.__dataclass_fields__}


async def test_lost_bind_mid_window_gives_retry_never_a_guess() -> None:
    async with Smsc(SmscConfig(drop_after=5)) as smsc:
        connector = SmppConnector(1, options(smsc.port, window=10), SystemClock())
        await connector.start(Collect())
        try:
            outcomes = await connector.submit([outbound(i) for i in range(1, 21)])
        finally:
            await connector.stop()
        by_result = {o.message_id: o.result for o in outcomes}
        accepted = {o.message_id for o in outcomes if o.result is SubmitResult.ACCEPTED}
        retried = {o.message_id for o in outcomes if o.result is SubmitResult.RETRY}
        assert accepted | retried == set(by_result) == set(range(1, 21))
        assert retried  # those in flight when the bind went
        # Every accepted message is one the SMSC has, under the id we were given.
        taken = {s.message_id for s in smsc.submitted}
        assert {o.supplier_message_id for o in outcomes if o.supplier_message_id} <= taken


def make_certificate(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


async def test_tls(tmp_path: Path) -> None:
    key, cert = make_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with Smsc(SmscConfig(tls=server_tls)) as smsc:
        sink = Collect()
        connector = SmppConnector(1, options(smsc.port, tls=True, tls_ca=str(cert)), SystemClock())
        await connector.start(sink)
        try:
            [outcome] = await connector.submit([outbound(1)])
            assert outcome.result is SubmitResult.ACCEPTED
            assert (await sink.wait(1))[0].status is Status.DELIVERED
        finally:
            await connector.stop()
        # Without the CA the certificate is refused, and nothing is sent.
        untrusting = SmppConnector(1, options(smsc.port, tls=True, bind_wait=0.3), SystemClock())
        await untrusting.start(sink)
        try:
            [refused] = await untrusting.submit([outbound(2)])
        finally:
            await untrusting.stop()
        assert refused.result is SubmitResult.RETRY and "CERTIFICATE" in (refused.error or "")


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="host"):
        parse_options({"system_id": "a", "password": "b"})
    with pytest.raises(ConfigurationError, match="window"):
        parse_options({"host": "h", "system_id": "a", "password": "b", "window": 0})
    with pytest.raises(ConfigurationError, match="long_messages"):
        parse_options({"host": "h", "system_id": "a", "password": "b", "long_messages": "x"})
    with pytest.raises(ConfigurationError, match="retry_errors"):
        parse_options({"host": "h", "system_id": "a", "password": "b", "retry_errors": "nope"})
    parsed = parse_options(
        {
            "host": "h",
            "system_id": "a",
            "password": 1234,  # the CLI turns digits into numbers
            "retry_errors": "ESME_RSYSERR, 0x401",
            "source_ton": 5,
        }
    )
    assert parsed.password == "1234" and parsed.retry_errors == {8, 0x401}
    assert parsed.source_ton == 5 and parsed.source_npi is None
    assert smpp_validity(datetime(2026, 3, 1, 12, 30, tzinfo=UTC)) == "260301123000000+"
