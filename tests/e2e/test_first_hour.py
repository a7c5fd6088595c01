"""A newcomer's first hour (issue 15, items 1-4 and 6): the demo as `make run` starts it,
its keys across restarts, its first curl, and the `tidings` command from another folder."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import orjson

from tests.e2e.gateway import TIDINGS, Gateway
from tidings import __version__


def _banner_value(log: str, label: str) -> str:
    return log.split(label, 1)[1].split()[0]


async def _final_sms_status(http: httpx.AsyncClient, key: str, reference: str) -> str:
    deadline = time.monotonic() + 30
    status = "accepted"
    while time.monotonic() < deadline:
        answer = await http.get(f"/rest/sms/reference/{reference}", headers={"X-API-KEY": key})
        status = answer.json()["status"]
        if status not in ("accepted", "queued", "sent", "unknown"):
            return str(status)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{reference} still {status}")


async def test_the_readme_first_message_is_delivered_and_keys_survive_restarts(
    database_url: str, tmp_path: Path
) -> None:
    gateway = Gateway(database_url, tmp_path)
    try:
        gateway.start("--demo")
        log = (gateway.workdir / "serve.log").read_text()
        # The banner (item 4): where it listens, the docs, the console, the database, the curls.
        assert f"listening on {gateway.base_url}" in log
        assert f"{gateway.base_url}/docs" in log
        assert f"{gateway.base_url}/console" in log
        assert "operators create --name NAME" in log
        assert "database:" in log
        assert "/hlr/create" in log and "/rest/viber/create" in log
        live = _banner_value(log, "live key: ")
        test = _banner_value(log, "test key: ")
        body = log.split("/rest/sms/create", 1)[1].split("-d '", 1)[1].split("'\n", 1)[0]
        headers = {"X-API-KEY": live, "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            created = (await http.post("/rest/sms/create", content=body, headers=headers)).json()
            assert created["error"] == "0", created
            # The demo simulator delivers everything (item 3): this is not luck, so ten more.
            for n in range(10):
                more = orjson.loads(body)
                more["reference"] = f"more{n}"
                answer = await http.post("/rest/sms/create", json=more, headers=headers)
                assert answer.json()["error"] == "0", answer.text
            assert await _final_sms_status(http, live, "demo1") == "delivered"
            for n in range(10):
                assert await _final_sms_status(http, live, f"more{n}") == "delivered"
            health = (await http.get("/health")).json()
            assert health["version"] == __version__
            metrics = (await http.get("/metrics")).text
            # `serve` on PostgreSQL runs a process per core: each sample names its process.
        assert re.search(
            rf'^tidings_build_info{{[^}}]*version="{re.escape(__version__)}"[^}}]*}} 1\.0$',
            metrics,
            re.MULTILINE,
        ), metrics[:500]
        gateway.stop()
        # Restarting `make run` shows the same keys, and they still work (item 2).
        (gateway.workdir / "serve.log").unlink()
        gateway.start("--demo")
        log = (gateway.workdir / "serve.log").read_text()
        assert _banner_value(log, "live key: ") == live
        assert _banner_value(log, "test key: ") == test
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            answer = await http.get("/rest/sms/reference/demo1", headers={"X-API-KEY": live})
            assert answer.json()["status"] == "delivered"
        # Rotating is an explicit command; the old key then stops working.
        rotated = gateway.cli("demo", "--rotate-keys")
        assert rotated["live_key"] != live
        assert gateway.cli("demo")["live_key"] == rotated["live_key"]
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            await asyncio.sleep(2.5)  # TIDINGS_CACHE_TTL: the key cache forgets the old key
            old = await http.get("/rest/sms/reference/demo1", headers={"X-API-KEY": live})
            assert old.json()["error"] == "1"
            new = await http.get(
                "/rest/sms/reference/demo1", headers={"X-API-KEY": rotated["live_key"]}
            )
            assert new.json()["status"] == "delivered"
    finally:
        gateway.stop()


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TIDINGS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_finds_the_same_database_from_any_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    here = tmp_path / "project"
    elsewhere = tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["XDG_DATA_HOME"] = str(data)
    database = data / "tidings" / "tidings.db"

    # Nothing set up yet: one clear line, a non-zero exit, no traceback, no empty database.
    missing = _run(["clients", "list"], elsewhere, env)
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0, missing.stderr
    assert str(database) in missing.stderr and "make run" in missing.stderr
    assert not database.exists() and not (elsewhere / "tidings.db").exists()

    # `make run`'s set-up in the project folder; the command elsewhere sees the same data.
    demo = orjson.loads(_run(["demo", "--json"], here, env).stdout)
    assert database.exists()
    listed = _run(["clients", "list", "--json"], elsewhere, env)
    assert listed.returncode == 0, listed.stderr
    assert [c["name"] for c in orjson.loads(listed.stdout)] == ["demo"]
    assert orjson.loads(_run(["demo", "--json"], elsewhere, env).stdout) == demo

    # TIDINGS_DATABASE_URL still wins; a file that is not migrated says what to run.
    (elsewhere / "blank.db").touch()
    blank = _run(
        ["clients", "list"], elsewhere, {**env, "TIDINGS_DATABASE_URL": "sqlite:///blank.db"}
    )
    assert blank.returncode == 1 and "Traceback" not in blank.stderr
    assert "tidings db upgrade" in blank.stderr
    assert blank.stderr.strip().count("\n") == 0, blank.stderr

    version = _run(["--version"], elsewhere, env)
    assert version.returncode == 0 and version.stdout.strip() == f"tidings {__version__}"
