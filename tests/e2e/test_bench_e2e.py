"""The pieces of `python -m bench.e2e` without a full run: the smpp34 SMSC simulator and the
callback receiver in their own processes, Kannel's wrk script and config."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import smpp34
from bench.e2e.kannel import KannelPorts, PgsqlTarget, render_config
from bench.e2e.loadgen import KANNEL_SCRIPT, LoadResult, run_wrk, wrk_available
from bench.e2e.peers import Peers
from bench.e2e.procs import CpuMeter, free_port
from bench.e2e.receiver import Tally, classify_kannel, classify_tidings
from bench.e2e.report import RoundResult, summarize
from bench.e2e.run import check
from bench.e2e.smsc import receipt_text

DELAY = 0.4


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(answer.status)


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(answer.status)


async def _submit_and_wait_receipt(port: int) -> tuple[smpp34.SubmitSmResp, bytes, float]:
    client = smpp34.Client("127.0.0.1", port, "bench", "secret", bind_type="TRX")
    smsc = await client.connect()
    try:
        started = time.monotonic()
        answer = await smsc.submit_sm(
            "380971234567", b"hello", source_addr="bench", registered_delivery=1
        )
        event = await asyncio.wait_for(smsc.next(), 5)
        assert isinstance(event, smpp34.DeliverSmEvent)
        assert event.esm_class == 0x04 and event.source_addr == "380971234567"
        return answer, event.short_message, time.monotonic() - started
    finally:
        await client.stop()


def test_simulator_answers_then_sends_a_receipt_after_its_delay(tmp_path: Path) -> None:
    peers = Peers(tmp_path, free_port(), free_port(), receipt_delay=DELAY)
    peers.start()
    try:
        meter = CpuMeter(roots=list(peers.pids.values())).start()
        answer, text, seconds = asyncio.run(_submit_and_wait_receipt(peers.smsc_port))
        assert answer.command_status == 0 and answer.message_id
        assert text.startswith(f"id:{answer.message_id} sub:001 dlvrd:001 submit date:".encode())
        assert b" stat:DELIVRD err:000 text:hello" in text
        assert DELAY <= seconds < DELAY + 3
        deadline = time.monotonic() + 5
        while peers.smsc_stats().get("receipts") != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = peers.smsc_stats()
        assert (stats["binds"], stats["submits"], stats["receipts"]) == (1, 1, 1)

        base = peers.callback_base
        sent = json.dumps({"reference": "r1", "status": "sent"}).encode()
        delivered = json.dumps({"reference": "r1", "status": "delivered"}).encode()
        assert _post(f"{base}/tidings", sent) == 200
        assert _post(f"{base}/tidings", delivered) == 200
        assert _post(f"{base}/tidings", delivered) == 200  # a duplicate
        assert _get(f"{base}/kannel?ref=k1&type=8") == 200
        assert _get(f"{base}/kannel?ref=k1&type=1") == 200
        counts = peers.callbacks()
        assert counts["callbacks"] == 5 and counts["messages"] == 2
        assert counts["finals"] == 2 and counts["duplicates"] == 1
        assert counts["kinds"] == {"sent": 2, "delivered": 3}
        assert counts["last_final_at"] is not None
        assert meter.stop() >= 0.0
    finally:
        peers.stop()
    assert peers.receiver is not None and not peers.receiver.running


def test_receipt_text_is_the_standard_format() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    assert receipt_text("42", at, at, b"a text longer than twenty bytes") == (
        b"id:42 sub:001 dlvrd:001 submit date:2603011205 done date:2603011205 "
        b"stat:DELIVRD err:000 text:a text longer than t"
    )


def test_callbacks_are_classified_per_gateway() -> None:
    assert classify_kannel("ref=a%20b&type=8") == ("a b", "sent", False)
    assert classify_kannel("ref=x&type=1") == ("x", "delivered", True)
    assert classify_kannel("ref=x&type=16") == ("x", "rejected", True)
    assert classify_kannel("type=1") == (None, "delivered", True)
    assert classify_tidings(b'{"reference":"r","status":"undelivered"}') == (
        "r",
        "undelivered",
        True,
    )
    assert classify_tidings(b"not json") == (None, None, False)
    tally = Tally()
    tally.record("r", "delivered", True)
    tally.record("r", "undelivered", True)  # a second, different final: counted as duplicate
    tally.record(None, None, False)
    snapshot = tally.snapshot()
    assert (snapshot["finals"], snapshot["duplicates"], snapshot["unparsed"]) == (1, 1, 1)


def test_kannel_config_has_the_groups_of_the_workload(tmp_path: Path) -> None:
    ports = KannelPorts(admin=13000, smsbox=13001, sendsms=13013)
    config = render_config(tmp_path, ports, 2775, dlr_storage="sqlite3", window=10)
    groups = [
        line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("group")
    ]
    assert groups == [
        "core",
        "sqlite3-connection",
        "dlr-db",
        "smsc",
        "smsbox",
        "sendsms-user",
        "sms-service",
    ]
    assert "dlr-storage = sqlite3" in config
    assert f'database = "{tmp_path / "kannel-dlr.sqlite3"}"' in config
    assert "smsc = smpp\n" in config and "transceiver-mode = true" in config
    assert "max-pending-submits = 10" in config and "port = 2775" in config
    assert "sendsms-port = 13013" in config
    internal = render_config(tmp_path, ports, 2775, dlr_storage="internal")
    assert "dlr-storage = internal" in internal and "sqlite3-connection" not in internal


class _FakeSendsms(BaseHTTPRequestHandler):
    """Answers as Kannel's sendsms does, refusing every third request, keeping the paths."""

    protocol_version = "HTTP/1.1"
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        refused = len(self.paths) % 3 == 0
        body = b"3: Unknown error" if refused else b"0: Accepted for delivery"
        self.send_response(202 if not refused else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_kannel_wrk_script_encodes_the_dlr_url_and_checks_answers(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeSendsms)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = run_wrk(
            KANNEL_SCRIPT,
            f"http://127.0.0.1:{port}",
            ["k9", "user", "pass", "http://127.0.0.1:9/kannel"],
            workdir=tmp_path,
            seconds=1,
            threads=1,
            connections=1,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.requests > 0 and result.accepted + result.refused == result.requests
    assert result.refused == result.requests // 3
    url = urlsplit(_FakeSendsms.paths[0])
    params = parse_qs(url.query)
    assert url.path == "/cgi-bin/sendsms" and params["dlr-mask"] == ["31"]
    # wrk calls request() once before sending, so numbering may start past 1.
    [number] = re.fullmatch(r"bench message (\d+)", params["text"][0]).groups()  # type: ignore[union-attr]
    assert params["username"] == ["user"] and params["from"] == ["bench"]
    assert params["dlr-url"] == [f"http://127.0.0.1:9/kannel?ref=k9t1n{number}&type=%d"]
    references = {parse_qs(urlsplit(p).query)["dlr-url"][0] for p in _FakeSendsms.paths}
    assert len(references) == len(_FakeSendsms.paths)  # one reference per request


def test_kannel_config_for_a_postgresql_dlr_store(tmp_path: Path) -> None:
    ports = KannelPorts(admin=13000, smsbox=13001, sendsms=13013)
    target = PgsqlTarget.from_url("postgresql://postgres@127.0.0.1:5432/tidings_bench_1_2")
    config = render_config(tmp_path, ports, 2775, dlr_storage="pgsql", pgsql=target)
    assert "dlr-storage = pgsql" in config and "group = pgsql-connection" in config
    assert "database = tidings_bench_1_2\n" in config and 'password = ""' in config
    assert "group = dlr-db" in config and "group = sqlite3-connection" not in config


def _round(system: str, accepted: int, finals: int, seconds: float, drained: bool) -> RoundResult:
    load = LoadResult(
        requests=accepted,
        accepted=accepted,
        refused=0,
        socket_errors=0,
        seconds=30.0,
        started_at=100.0,
        p50_ms=1.0,
        p99_ms=2.0,
        cpu_seconds=0.3,
    )
    callbacks = {
        "callbacks": 2 * finals,
        "finals": finals,
        "duplicates": 0,
        "unparsed": 0,
        "kinds": {"sent": finals, "delivered": finals},
        "last_final_at": 100.0 + seconds,
    }
    return RoundResult.build(
        system=system,
        label=system,
        number=1,
        load=load,
        callbacks=callbacks,
        smsc={"submits": finals, "receipts": finals},
        stored=None,
        drained=drained,
        drain_seconds=1.0,
        window_seconds=40.0,
        gateway_cpu=finals / 1000,  # 1 ms a message
        db_cpu=None,
        peer_cpu={"smsc": 4.0, "receiver": 2.0},
        load_average=(1.0, 1.0),
    )


def test_ratio_and_check_of_a_run() -> None:
    kannel = _round("kannel", 10_000, 4_000, 40.0, drained=False)  # 100/s, 6,000 still due
    tidings = _round("tidings", 6_000, 6_000, 40.0, drained=True)  # 150/s
    assert (kannel.final_rate, kannel.unfinished, kannel.cpu_ms_per_message) == (100, 6000, 1)
    assert (kannel.smsc_cores, kannel.receiver_cores) == (0.1, 0.05)
    summary = summarize([kannel, tidings])
    assert summary["ratio_final_rate"] == 1.5 and summary["ratio_cpu_per_message"] == 1.0
    assert summary["kannel"]["still_due"] == 6000 and summary["kannel"]["lost"] == 0
    assert check(summary, 1.5) == []
    assert check(summary, 2.0) == ["Tidings / Kannel = 1.50 < 2"]
    lossy = _round("tidings", 6_000, 5_999, 40.0, drained=True)
    assert check(summarize([kannel, lossy]), 1.0) == [
        "tidings: 1 lost, 0 still due after the drain timeout, 0 duplicated"
    ]
