"""Export files kept in the database (exports/dbstorage.py), on each database: files appear
whole or not at all, stream in chunks, are replaced, deleted and swept; an export made
through the API is built into the database and downloaded from it; migration 0018 moves
files from disk into the database."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.integration.test_exports import CREATE, LIST, WINDOW, seed_messages
from tests.support import api_client, build_world
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.exports.dbstorage import CHUNK_BYTES, DatabaseStorage, FileGone
from tidings.exports.filters import ExportFilter
from tidings.exports.models import READY, Export, ExportFile, ExportFileChunk
from tidings.exports.repository import create_reader_engine
from tidings.exports.service import create_export, one_month_after
from tidings.exports.worker import ExportOptions, ExportWorker
from tidings.numbering import CountryTable

Sessions = async_sessionmaker[AsyncSession]
KEY = "0123456789abcdef0123456789abcdef"
OTHER = "f" * 32


async def read_all(storage: DatabaseStorage, key: str, fmt: str) -> bytes | None:
    stored = await storage.open(key, fmt)
    if stored is None:
        return None
    pieces = [chunk async for chunk in stored.chunks()]
    assert all(len(piece) <= CHUNK_BYTES for piece in pieces)
    return b"".join(pieces)


async def count(sessions: Sessions, model: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_file_is_invisible_until_committed_and_streams_in_chunks(
    sessions: Sessions, clock: FrozenClock
) -> None:
    storage = DatabaseStorage(sessions, clock)
    content = bytes(range(256)) * (CHUNK_BYTES * 5 // 2 // 256)  # 2.5 chunks
    staged = await storage.stage(KEY, "json")
    for start in range(0, len(content), 300_000):  # writes of any size
        await staged.write(content[start : start + 300_000])
    assert await storage.open(KEY, "json") is None
    assert await staged.commit() == len(content)
    assert await count(sessions, ExportFileChunk) == 3
    stored = await storage.open(KEY, "json")
    assert stored is not None and stored.size == len(content)
    await stored.close()
    assert await read_all(storage, KEY, "json") == content
    assert await read_all(storage, KEY, "xml") is None


async def test_a_new_build_replaces_the_old_file_which_the_sweep_removes_later(
    sessions: Sessions, clock: FrozenClock
) -> None:
    storage = DatabaseStorage(sessions, clock)
    first = await storage.stage(KEY, "csv")
    await first.write(b"old")
    await first.commit()
    reading = await storage.open(KEY, "csv")  # a download in progress
    clock.advance(10)
    second = await storage.stage(KEY, "csv")
    await second.write(b"new!")
    await second.commit()
    assert reading is not None
    assert b"".join([c async for c in reading.chunks()]) == b"old"  # kept its file
    assert await read_all(storage, KEY, "csv") == b"new!"
    assert await storage.sweep({KEY}, stale_after=3600) == []  # still fresh
    clock.advance(3600)
    removed = await storage.sweep({KEY}, stale_after=3600)
    assert len(removed) == 1 and removed[0].startswith(f"{KEY}.csv#")
    assert await read_all(storage, KEY, "csv") == b"new!"
    assert await count(sessions, ExportFile) == 1


async def test_discard_delete_and_sweep(sessions: Sessions, clock: FrozenClock) -> None:
    storage = DatabaseStorage(sessions, clock)
    staged = await storage.stage(KEY, "xml")
    await staged.write(b"x" * (CHUNK_BYTES + 1))
    await staged.discard()
    assert await count(sessions, ExportFile) == 0
    assert await count(sessions, ExportFileChunk) == 0
    for fmt in ("json", "xml"):
        done = await storage.stage(KEY, fmt)
        await done.write(b"{}")
        await done.commit()
    dead = await storage.stage(KEY, "csv")  # a dead builder's unfinished file
    await dead.write(b"y" * CHUNK_BYTES)
    await storage.discard_parts(KEY)  # as the next build of the key does
    with pytest.raises(FileGone):
        await dead.write(b"y" * CHUNK_BYTES)  # the dead builder, if alive, can't go on
    with pytest.raises(FileGone):
        await dead.commit()
    unknown = await storage.stage(OTHER, "json")
    await unknown.commit()
    stale = await storage.stage(KEY, "csv")
    await stale.write(b"z")  # buffered, nothing written: still untouched since stage
    clock.advance(7200)
    fresh = await storage.stage(KEY, "csv")  # being written right now: kept
    removed = await storage.sweep({KEY}, stale_after=3600)
    assert sorted(name.split("#")[0] for name in removed) == [f"{KEY}.csv", f"{OTHER}.json"]
    assert await read_all(storage, KEY, "json") == b"{}"
    await fresh.discard()
    await storage.delete(KEY)
    assert await count(sessions, ExportFile) == 0
    assert await count(sessions, ExportFileChunk) == 0
    await storage.delete(KEY)  # nothing left: no error


async def test_an_export_is_built_into_the_database_and_downloaded_then_purged(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    """No TIDINGS_EXPORT_DIR: the API reads the files the worker wrote to the database."""
    world = await build_world(sessions, clock)
    seeded = await seed_messages(sessions, world.client_id, 40)
    reader = create_reader_engine(database_url)
    worker = ExportWorker(
        sessions,
        reader,
        DatabaseStorage(sessions, clock),
        clock,
        CountryTable.load(),
        ExportOptions(batch_size=7),
    )
    headers = {"X-API-KEY": world.live_key}
    try:
        async with api_client(database_url, clock) as http:
            body = {**WINDOW, "message_type": "sms"}
            key = (await http.post(CREATE, headers=headers, json=body)).json()["key"]
            assert await worker.run_once()
            answer = await http.get(f"/rest/stat/file/id/{key}/format/json", headers=headers)
            assert answer.status_code == 200
            assert int(answer.headers["content-length"]) == len(answer.content)
            rows = orjson.loads(answer.content)["message_data"]
            assert [row["message_ID"] for row in rows] == [m.id for m in seeded]
            listed = (await http.get(LIST, headers=headers)).json()["files"][0]
            for fmt in ("xml", "csv"):
                got = await http.get(f"/rest/stat/file/id/{key}/format/{fmt}", headers=headers)
                assert len(got.content) == listed["sizes"][fmt]
            clock.advance((one_month_after(clock.now()) - clock.now()).total_seconds() + 1)
            assert await worker.purge() == 1
            assert await count(sessions, ExportFile) == 0
            assert await count(sessions, ExportFileChunk) == 0
            # Deleting through the API removes the files too.
            key = (await http.post(CREATE, headers=headers, json=body)).json()["key"]
            assert await worker.run_once()
            assert await count(sessions, ExportFile) == 3
            assert (await http.delete(f"/rest/message/list/{key}", headers=headers)).json() == {
                "error": 0
            }
            assert await count(sessions, ExportFile) == 0
    finally:
        await reader.dispose()


def migration() -> ModuleType:
    return importlib.import_module("tidings.db.migrations.versions.0018_export_files")


async def test_migration_0018_moves_files_in_and_rebuilds_exports_whose_files_are_elsewhere(
    engine: AsyncEngine,
    sessions: Sessions,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await build_world(sessions, clock)
    keys = []
    async with transaction(sessions) as session:
        for _ in range(2):
            keys.append(await create_export(session, clock, world.client_id, ExportFilter(), None))
        sizes = {"json": CHUNK_BYTES + 10, "xml": 5}
        await session.execute(
            update(Export).values(state=READY, row_count=3, sizes=sizes, attempts=1)
        )
    here, elsewhere = keys
    contents = {fmt: bytes([n % 251 for n in range(size)]) for fmt, size in sizes.items()}
    for fmt, data in contents.items():
        (tmp_path / f"{here}.{fmt}").write_bytes(data)
    monkeypatch.setenv("TIDINGS_EXPORT_STORAGE", "database")
    monkeypatch.setenv("TIDINGS_EXPORT_DIR", str(tmp_path))

    async with engine.begin() as connection:
        await connection.run_sync(migration()._move_files_in)

    storage = DatabaseStorage(sessions, clock)
    for fmt, data in contents.items():
        assert await read_all(storage, here, fmt) == data
    async with sessions() as session:
        exports = {e.key: e for e in (await session.scalars(select(Export))).all()}
    assert exports[here].state == READY and exports[here].sizes == sizes
    moved = exports[elsewhere]
    assert (moved.state, moved.sizes, moved.attempts, moved.row_count) == ("pending", None, 0, None)
    assert await read_all(storage, elsewhere, "json") is None
    assert (tmp_path / f"{here}.json").exists()  # left on disk, for the operator to delete


def test_migration_0018_leaves_a_shared_directory_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_EXPORT_STORAGE", raising=False)
    monkeypatch.setenv("TIDINGS_EXPORT_DIR", "/srv/shared-exports")
    assert migration()._old_directory(None) is None
    monkeypatch.setenv("TIDINGS_EXPORT_STORAGE", "directory")
    monkeypatch.delenv("TIDINGS_EXPORT_DIR")
    assert migration()._old_directory(None) is None
