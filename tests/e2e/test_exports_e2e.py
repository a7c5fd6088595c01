"""Statistics exports end to end: `tidings serve` as a subprocess, killed with SIGKILL mid-build.

The export must not stay "not ready" for ever: after the restart, once the dead build's lease
runs out, the export is built again from scratch; the files are complete, the dead build's
unfinished files are gone, and the client's callback URL gets the export once it is ready.
The files are in the database (the default storage, exports/dbstorage.py).
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from bench.exports import seed_messages
from sqlalchemy import select

from tests.e2e.gateway import Gateway
from tests.support import Receiver
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.exports.models import Export, ExportFile

ROWS = 150_000
# Recent messages, still valid: the sweeper of the gateway under test leaves them alone.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
WINDOW = {
    "time_in_from": f"{START:%Y-%m-%d %H:%M:%S}",
    "time_in_to": f"{START + timedelta(hours=1):%Y-%m-%d %H:%M:%S}",
}


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(
        database_url,
        tmp_path,
        export_lease_seconds="3",
        export_poll_interval="0.2",
        export_batch_size="500",
        webhook_lease_seconds="5",
        webhook_timeout="2",
    )
    yield node
    node.stop()


async def listing(http: httpx.AsyncClient, key: str) -> dict[str, Any]:
    answer = await http.get("/rest/stat/list", headers={"X-API-KEY": key})
    files: list[dict[str, Any]] = answer.json()["files"]
    assert len(files) == 1, files
    return files[0]


async def wait_for(
    http: httpx.AsyncClient, api_key: str, state: str, within: float, poll: float = 0.05
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        entry = await listing(http, api_key)
        if entry["state"] == state:
            return entry
        assert time.monotonic() < deadline, f"still {entry['state']} after {within} s"
        await asyncio.sleep(poll)


def files_named(root: Path, key: str) -> list[Path]:
    return list(root.rglob(f"*{key}*"))


async def stored_files(database_url: str) -> list[tuple[str, bool, int]]:
    """(format, complete, size) of every export file in the database."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(ExportFile.format, ExportFile.complete, ExportFile.size)
            )
            return [(fmt, complete, size) for fmt, complete, size in rows]
    finally:
        await engine.dispose()


async def parts(database_url: str) -> list[str]:
    """The unfinished files."""
    return [fmt for fmt, complete, _ in await stored_files(database_url) if not complete]


async def test_kill_9_during_an_export_then_it_is_rebuilt(
    gateway: Gateway, database_url: str, tmp_path: Path
) -> None:
    async with Receiver() as receiver:
        gateway.start()
        client = gateway.cli("clients", "create", "--name", "acme", "--balance", "0")
        gateway.cli("clients", "update", str(client["id"]), "--callback-url", receiver.url)
        api_key = str(client["live_key"])
        await seed_messages(database_url, int(client["id"]), ROWS, start=START)

        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
            created = await http.post(
                "/rest/stat/create", headers={"X-API-KEY": api_key}, json=WINDOW
            )
            key = created.json()["key"]
            # Kill it once the build is under way: the state says so and files are growing.
            deadline = time.monotonic() + 30
            while not (
                (await listing(http, api_key))["state"] == "building" and await parts(database_url)
            ):
                assert time.monotonic() < deadline, "the build never started"
                await asyncio.sleep(0.02)
            gateway.kill()
            assert await parts(database_url)
            assert not [f for f in await stored_files(database_url) if f[1]]  # none complete

            gateway.start()
            entry = await wait_for(http, api_key, "ready", within=120)
            assert entry["rows"] == ROWS
            assert not await parts(database_url)  # the dead build's leftovers are gone

            answer = await http.get(
                f"/rest/stat/file/id/{key}/format/json", headers={"X-API-KEY": api_key}
            )
            assert answer.status_code == 200
            rows = orjson.loads(answer.content)["message_data"]
            assert len(rows) == ROWS
            assert [row["message_ID"] for row in rows[:3]] == sorted(
                row["message_ID"] for row in rows[:3]
            )
            answer = await http.get(
                f"/rest/stat/file/id/{key}/format/xml", headers={"X-API-KEY": api_key}
            )
            assert len(ET.fromstring(answer.content).find("message_data") or []) == ROWS
            complete = {fmt: size for fmt, done, size in await stored_files(database_url) if done}
            assert complete == entry["sizes"]
            assert files_named(tmp_path, key) == []  # nothing on disk

            # The callback: the export, announced once it is ready.
            deadline = time.monotonic() + 30
            while not receiver.answered(200):
                assert time.monotonic() < deadline, "no callback"
                await asyncio.sleep(0.05)
        gateway.stop()

    hooks = [orjson.loads(r.body) for r in receiver.answered(200)]
    assert [(hook["key"], hook["state"], hook["rows"]) for hook in hooks] == [(key, "ready", ROWS)]
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            export = (await session.execute(select(Export))).scalar_one()
    finally:
        await engine.dispose()
    assert export.state == "ready" and export.attempts == 2 and export.lease_owner is None
