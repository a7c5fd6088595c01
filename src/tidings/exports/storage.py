"""Where export files live: behind `ExportStorage`, so that the database, a shared directory
or an object store can hold them.

Two implementations: `DatabaseStorage` (exports/dbstorage.py, the default: every api process
on every host serves every file) and `LocalStorage` here (`TIDINGS_EXPORT_STORAGE=directory`:
one directory, which must be shared by every host that runs api or worker processes).

`LocalStorage` keeps `<key>.<format>` files in one directory. A file is written as
`<key>.<format>.<token>.part` and renamed into place only when complete (after fsync), so a
reader sees a whole file or none, and a builder that dies leaves only a `.part` file that
the next build of that key, or the purge, removes. Its disk work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.config import Settings
from tidings.exports.dbstorage import DatabaseStorage

READ_CHUNK = 256 * 1024
WRITE_BUFFER = 1024 * 1024
PART = ".part"


class StagedFile(Protocol):
    """A file being written: invisible to readers until `commit`."""

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> int:
        """Make the file visible under its name (replacing any older one); its size."""
        ...

    async def discard(self) -> None: ...


class StoredFile(Protocol):
    """An open, complete file: its size, and its bytes in chunks (then closed)."""

    size: int

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class ExportStorage(Protocol):
    async def stage(self, key: str, fmt: str) -> StagedFile: ...

    async def open(self, key: str, fmt: str) -> StoredFile | None:
        """The file, or None when there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Every file of an export (and its unfinished parts); no error if there are none."""
        ...

    async def sweep(self, known: Collection[str], *, stale_after: float) -> list[str]:
        """Remove files untouched for `stale_after` seconds that are unfinished parts or
        belong to no `known` key (left by a crash); returns the names removed."""
        ...

    async def discard_parts(self, key: str) -> None:
        """Remove the unfinished parts of a key (a dead builder's), before building it anew."""
        ...


def storage_for(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> ExportStorage:
    """The storage the settings name: the database (`sessions`, the primary's), unless
    `TIDINGS_EXPORT_STORAGE=directory` (the default when `TIDINGS_EXPORT_DIR` is set)."""
    if settings.export_storage_kind == "directory":
        return LocalStorage(default_directory(settings))
    return DatabaseStorage(sessions, clock)


def default_directory(settings: Settings) -> Path:
    """`TIDINGS_EXPORT_DIR`, else `<name>-exports/` beside the SQLite file, else
    `./tidings-exports` (PostgreSQL, or an in-memory SQLite)."""
    if settings.export_dir:
        return Path(settings.export_dir)
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            return path.with_name(f"{path.stem}-exports")
    return Path("tidings-exports")


def _is_key(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


class _LocalStaged:
    def __init__(self, final: Path, part: Path) -> None:
        self._final = final
        self._part = part
        self._file: BinaryIO = part.open("wb", buffering=WRITE_BUFFER)

    async def write(self, data: bytes) -> None:
        if data:
            await asyncio.to_thread(self._file.write, data)

    def _commit(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        size = self._file.tell()
        self._file.close()
        os.replace(self._part, self._final)
        return size

    async def commit(self) -> int:
        return await asyncio.to_thread(self._commit)

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._part.unlink(missing_ok=True)

    async def discard(self) -> None:
        await asyncio.to_thread(self._discard)


class _LocalFile:
    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(self._file.read, READ_CHUNK):
                yield chunk
        finally:
            self._file.close()

    async def close(self) -> None:
        self._file.close()


class LocalStorage:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str, fmt: str) -> Path:
        # Keys are made by us (hex) and checked by the API before they get here.
        if not (key.isalnum() and fmt.isalnum()):
            raise ValueError(f"bad export file name {key!r}.{fmt!r}")
        return self.directory / f"{key}.{fmt}"

    async def stage(self, key: str, fmt: str) -> StagedFile:
        final = self._path(key, fmt)
        part = final.with_name(f"{final.name}.{secrets.token_hex(4)}{PART}")

        def _stage() -> _LocalStaged:
            self.directory.mkdir(parents=True, exist_ok=True)
            return _LocalStaged(final, part)

        return await asyncio.to_thread(_stage)

    async def open(self, key: str, fmt: str) -> StoredFile | None:
        path = self._path(key, fmt)

        def _open() -> _LocalFile | None:
            try:
                file = path.open("rb")
            except FileNotFoundError:
                return None
            return _LocalFile(file, os.fstat(file.fileno()).st_size)

        return await asyncio.to_thread(_open)

    def _names(self) -> list[Path]:
        try:
            return [path for path in self.directory.iterdir() if path.is_file()]
        except FileNotFoundError:
            return []

    async def delete(self, key: str) -> None:
        def _delete() -> None:
            for path in self._names():
                if path.name.split(".", 1)[0] == key:
                    path.unlink(missing_ok=True)

        await asyncio.to_thread(_delete)

    async def sweep(self, known: Collection[str], *, stale_after: float) -> list[str]:
        def _sweep() -> list[str]:
            removed = []
            now = time.time()
            for path in self._names():
                key = path.name.split(".", 1)[0]
                if not _is_key(key) or (key in known and not path.name.endswith(PART)):
                    continue
                try:
                    if now - path.stat().st_mtime < stale_after:
                        continue  # maybe still being written, or just made
                except FileNotFoundError:
                    continue
                path.unlink(missing_ok=True)
                removed.append(path.name)
            return removed

        return await asyncio.to_thread(_sweep)

    async def discard_parts(self, key: str) -> None:
        def _discard() -> None:
            for path in self._names():
                if path.name.startswith(f"{key}.") and path.name.endswith(PART):
                    path.unlink(missing_ok=True)

        await asyncio.to_thread(_discard)
