"""Local export storage: files appear whole or not at all; deletes and sweeps."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tidings.config import Settings
from tidings.exports.storage import LocalStorage, default_directory

KEY = "0123456789abcdef0123456789abcdef"


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_a_staged_file_is_invisible_until_committed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "exports")
    staged = await storage.stage(KEY, "json")
    await staged.write(b"hello ")
    await staged.write(b"world")
    assert await storage.open(KEY, "json") is None
    assert await staged.commit() == 11
    stored = await storage.open(KEY, "json")
    assert stored is not None and stored.size == 11
    assert b"".join([chunk async for chunk in stored.chunks()]) == b"hello world"
    assert names(tmp_path / "exports") == [f"{KEY}.json"]


async def test_a_new_build_replaces_the_old_file_atomically(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    first = await storage.stage(KEY, "csv")
    await first.write(b"old")
    await first.commit()
    reader = await storage.open(KEY, "csv")  # a download in progress
    second = await storage.stage(KEY, "csv")
    await second.write(b"new!")
    await second.commit()
    assert reader is not None
    assert b"".join([c async for c in reader.chunks()]) == b"old"  # kept its file
    again = await storage.open(KEY, "csv")
    assert again is not None and again.size == 4
    await again.close()


async def test_discard_and_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    staged = await storage.stage(KEY, "xml")
    await staged.write(b"partial")
    await staged.discard()
    assert names(tmp_path) == []
    for fmt in ("json", "xml"):
        done = await storage.stage(KEY, fmt)
        await done.commit()
    dangling = await storage.stage(KEY, "csv")
    await dangling.write(b"x")
    other = await storage.stage("f" * 32, "json")
    await other.commit()
    await storage.discard_parts(KEY)  # as a new build does with a dead builder's parts
    await dangling.discard()  # (here the "dead" builder's handle is ours to close)
    assert names(tmp_path) == sorted([f"{KEY}.json", f"{KEY}.xml", f"{'f' * 32}.json"])
    await storage.delete(KEY)
    assert names(tmp_path) == [f"{'f' * 32}.json"]
    await storage.delete(KEY)  # nothing left: no error
    await LocalStorage(tmp_path / "missing").delete(KEY)


async def test_sweep_removes_stale_parts_and_unknown_keys_only(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    made = [
        f"{KEY}.json",  # known, complete: kept
        f"{KEY}.json.aaaa1111.part",  # known, unfinished and stale: removed
        f"{'e' * 32}.xml",  # unknown: removed
        "README",  # not ours: kept
    ]
    old = time.time() - 7200
    for name in made:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (old, old))
    fresh = tmp_path / f"{'d' * 32}.csv.bbbb2222.part"
    fresh.write_bytes(b"x")  # being written right now: kept
    removed = await storage.sweep({KEY}, stale_after=3600)
    assert sorted(removed) == sorted(made[1:3])
    assert names(tmp_path) == sorted([made[0], made[3], fresh.name])


async def test_bad_names_are_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for key, fmt in (("../x", "json"), (KEY, "json/../x"), ("", "json")):
        try:
            await storage.stage(key, fmt)
        except ValueError:
            continue
        raise AssertionError(f"{key!r}.{fmt!r} accepted")


def test_default_directory() -> None:
    assert default_directory(Settings(export_dir="/srv/exports")) == Path("/srv/exports")
    sqlite = Settings(database_url="sqlite:////var/lib/tidings/main.db")
    assert default_directory(sqlite) == Path("/var/lib/tidings/main-exports")
    assert default_directory(Settings(database_url="sqlite:///./tidings.db")) == Path(
        "tidings-exports"
    )
    postgres = Settings(database_url="postgresql://u@h/db")
    assert default_directory(postgres) == Path("tidings-exports")
    assert default_directory(Settings(database_url="sqlite:///:memory:")) == Path("tidings-exports")
