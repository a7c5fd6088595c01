"""Many hosts, one PostgreSQL: processes that share nothing but the database URL.

Three "hosts": `tidings api` A, `tidings worker` B and `tidings api` C, each with its own
working directory, XDG_DATA_HOME, TMPDIR and port. `tidings api` runs no export worker, so
only B can build. An export asked through A is built by B and downloaded through C (and A),
then deleted through C; no host's disk ever holds a file of it; an operator signed in to the
console on A is signed in on C. B and C also have a read replica: a read-only login to the
same database, which B's export stream and C's console pages read (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from bench.exports import seed_messages

from tests.e2e.gateway import TIDINGS, Gateway
from tests.integration.test_read_replica import READER_ROLE, read_only_login

PASSWORD = "correct horse battery staple"
ROWS = 5_000  # about 1.7 MB of JSON: more than one 1 MiB chunk
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
WINDOW = {
    "time_in_from": f"{START:%Y-%m-%d %H:%M:%S}",
    "time_in_to": f"{START + timedelta(hours=1):%Y-%m-%d %H:%M:%S}",
    "message_type": "sms",
}


def host_env(home: Path) -> dict[str, str]:
    """What one host has of its own: its folders. Nothing of the test's environment that
    could point at a shared place (an export directory) goes through."""
    for folder in ("data", "tmp"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    return {"XDG_DATA_HOME": str(home / "data"), "TMPDIR": str(home / "tmp"), "HOME": str(home)}


def make_host(database_url: str, home: Path, **settings: str) -> Gateway:
    node = Gateway(database_url, home, **settings)
    node.env = {k: v for k, v in node.env.items() if not k.startswith("TIDINGS_EXPORT_")}
    node.env.update(host_env(home))
    node.env.update({f"TIDINGS_{k.upper()}": v for k, v in settings.items()})
    return node


@pytest.fixture
def replica_url(database_url: str) -> str:
    return read_only_login(database_url)


@pytest.fixture
def hosts(
    database_url: str, replica_url: str, tmp_path: Path
) -> Iterator[tuple[Gateway, Gateway, Path]]:
    if database_url.startswith("sqlite"):
        pytest.skip("many hosts means one PostgreSQL")
    a = make_host(database_url, tmp_path / "a")
    # C reads its console pages through a read-only "replica" login to the same database.
    c = make_host(database_url, tmp_path / "c", database_replica_url=replica_url)
    try:
        yield a, c, tmp_path / "b"
    finally:
        a.stop()
        c.stop()


def start_worker(database_url: str, replica_url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(host_env(home))
    env.update(
        {
            "TIDINGS_DATABASE_URL": database_url,
            # The build streams the messages from the "replica" (a read-only login).
            "TIDINGS_DATABASE_REPLICA_URL": replica_url,
            "TIDINGS_EXPORT_POLL_INTERVAL": "0.2",
            "TIDINGS_LOG_LEVEL": "WARNING",
        }
    )
    with (home / "worker.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [TIDINGS, "worker"], env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT
        )


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name} field"
    return found.group(1)


async def logins_of(database_url: str, role: str) -> int:
    """Connections of `role` to the database now (pg_stat_activity)."""
    connection = await asyncpg.connect(database_url)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE usename = $1 AND datname = current_database()",
            role,
        )
    finally:
        await connection.close()
    return int(count)


def files_named(root: Path, key: str) -> list[Path]:
    return list(root.rglob(f"*{key}*"))


async def listing(http: httpx.AsyncClient, api_key: str) -> list[dict[str, Any]]:
    answer = await http.get("/rest/stat/list", headers={"X-API-KEY": api_key})
    files: list[dict[str, Any]] = answer.json()["files"]
    return files


async def test_an_export_asked_on_one_host_is_built_on_another_and_served_by_a_third(
    hosts: tuple[Gateway, Gateway, Path], database_url: str, replica_url: str, tmp_path: Path
) -> None:
    a, c, b_home = hosts
    a.start(command="api")
    c.start(command="api")
    client = a.cli("clients", "create", "--name", "acme", "--balance", "0")
    api_key = str(client["live_key"])
    headers = {"X-API-KEY": api_key}
    await seed_messages(database_url, int(client["id"]), ROWS, start=START)
    worker = start_worker(database_url, replica_url, b_home)
    try:
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=c.base_url, timeout=30) as on_c,
        ):
            key = (await on_a.post("/rest/stat/create", headers=headers, json=WINDOW)).json()["key"]
            deadline = time.monotonic() + 60
            while (entry := (await listing(on_c, api_key))[0])["state"] != "ready":
                assert worker.poll() is None, (b_home / "worker.log").read_text()[-2000:]
                assert time.monotonic() < deadline, f"still {entry['state']}"
                await asyncio.sleep(0.1)
            assert entry["rows"] == ROWS
            # Only B has used its replica login so far: its build read the messages there.
            assert await logins_of(database_url, READER_ROLE) >= 1

            from_c = await on_c.get(f"/rest/stat/file/id/{key}/format/json", headers=headers)
            assert from_c.status_code == 200
            assert len(from_c.content) == entry["sizes"]["json"] > 1024 * 1024
            rows = orjson.loads(from_c.content)["message_data"]
            assert len(rows) == ROWS
            from_a = await on_a.get(f"/rest/stat/file/id/{key}/format/json", headers=headers)
            assert from_a.content == from_c.content
            csv = await on_c.get(f"/rest/stat/file/id/{key}/format/csv", headers=headers)
            assert csv.content.count(b"\r\n") == ROWS + 1

            # No host's disk holds the export, not even a temporary part.
            assert files_named(tmp_path, key) == []

            # An operator signed in on A is signed in on C: one secret, in the database.
            a.cli("operators", "create", "--name", "olga", "--password", PASSWORD)
            async with httpx.AsyncClient(timeout=30) as browser:  # cookies: host, not port
                form = await browser.get(f"{a.base_url}/console/login")
                signed = await browser.post(
                    f"{a.base_url}/console/login",
                    data={
                        "csrf": hidden(form.text, "csrf"),
                        "next": "/console",
                        "name": "olga",
                        "password": PASSWORD,
                    },
                )
                assert signed.status_code == 303, signed.text
                page = await browser.get(f"{c.base_url}/console")
                assert page.status_code == 200 and "olga" in page.text

            gone = await on_c.delete(f"/rest/message/list/{key}", headers=headers)
            assert gone.json() == {"error": 0}
            again = await on_a.get(f"/rest/stat/file/id/{key}/format/json", headers=headers)
            assert again.status_code == 404 and again.json()["error"] == "90"
    finally:
        worker.terminate()
        worker.wait(timeout=15)
