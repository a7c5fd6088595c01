"""Export files kept in the database: any api process on any host serves any export.

A file is a row of `export_files` and its bytes rows of `export_file_chunks`, `CHUNK_BYTES`
each. A build writes chunk by chunk, one short transaction each, into a file that readers
don't see (`complete` false); `commit` flips it in one statement, so a reader gets a whole
file or none, as with the rename on disk. A newer complete file of the same key and format
hides an older one; the older one is left for the sweep (after `stale_after`), so that a
download already streaming it is not cut short. A builder that dies leaves an unfinished
file that the next build of the key (`discard_parts`) or the purge's sweep removes.

Downloads read one chunk per statement, so memory holds one chunk per download whatever
the file's size, and no transaction stays open while the client reads slowly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Collection
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.db.engine import transaction
from tidings.errors import NotFound
from tidings.exports.file_repository import ExportFileRepository, FileEntry

if TYPE_CHECKING:  # storage.py builds this storage: no import cycle at run time
    from tidings.exports.storage import StagedFile, StoredFile

# 1 MiB: few enough rows for a big file (a thousand per gigabyte), small enough that a
# chunk in flight costs little memory, and under every driver's parameter size limit.
CHUNK_BYTES = 1024 * 1024


class FileGone(NotFound):
    """The unfinished file was removed under its builder (its export deleted, or another
    builder took the key over): the build must not finish."""


class _Staged:
    def __init__(self, storage: DatabaseStorage, file_id: int) -> None:
        self._storage = storage
        self._file_id = file_id
        self._buffer = bytearray()
        self._seq = 0
        self._size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= CHUNK_BYTES:
            await self._flush(bytes(self._buffer[:CHUNK_BYTES]))
            del self._buffer[:CHUNK_BYTES]

    async def _flush(self, data: bytes) -> None:
        async with transaction(self._storage.sessions) as session:
            stored = await ExportFileRepository(session).append(
                self._file_id, self._seq, data, self._storage.clock.now()
            )
        if not stored:
            raise FileGone(f"export file {self._file_id} was removed while being written")
        self._seq += 1
        self._size += len(data)

    async def commit(self) -> int:
        if self._buffer:
            await self._flush(bytes(self._buffer))
            self._buffer.clear()
        async with transaction(self._storage.sessions) as session:
            done = await ExportFileRepository(session).complete(
                self._file_id, self._size, self._storage.clock.now()
            )
        if not done:
            raise FileGone(f"export file {self._file_id} was removed before it was complete")
        return self._size

    async def discard(self) -> None:
        self._buffer.clear()
        async with transaction(self._storage.sessions) as session:
            await ExportFileRepository(session).delete_ids([self._file_id])


class _Stored:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], file_id: int, size: int):
        self._sessions = sessions
        self._file_id = file_id
        self.size = size
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        seq = 0
        while not self._closed:
            async with self._sessions() as session:
                data = await ExportFileRepository(session).chunk(self._file_id, seq)
            if data is None:  # the end (or the file was purged meanwhile)
                return
            yield data
            seq += 1

    async def close(self) -> None:
        self._closed = True


class DatabaseStorage:
    """`ExportStorage` in the primary database (`sessions` must write: builds, purges)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def stage(self, key: str, fmt: str) -> StagedFile:
        async with transaction(self.sessions) as session:
            file_id = await ExportFileRepository(session).create(key, fmt, self.clock.now())
        return _Staged(self, file_id)

    async def open(self, key: str, fmt: str) -> StoredFile | None:
        async with self.sessions() as session:
            found = await ExportFileRepository(session).newest(key, fmt)
        return None if found is None else _Stored(self.sessions, *found)

    async def delete(self, key: str) -> None:
        async with transaction(self.sessions) as session:
            repository = ExportFileRepository(session)
            await repository.delete_ids(await repository.ids_of(key, unfinished_only=False))

    async def discard_parts(self, key: str) -> None:
        async with transaction(self.sessions) as session:
            repository = ExportFileRepository(session)
            await repository.delete_ids(await repository.ids_of(key, unfinished_only=True))

    async def sweep(self, known: Collection[str], *, stale_after: float) -> list[str]:
        async with self.sessions() as session:
            entries = await ExportFileRepository(session).entries()
        before = self.clock.now() - timedelta(seconds=stale_after)
        doomed = [entry for entry in _leftovers(entries, known) if entry.updated_at < before]
        async with transaction(self.sessions) as session:
            await ExportFileRepository(session).delete_ids([entry.id for entry in doomed])
        return [f"{entry.key}.{entry.format}#{entry.id}" for entry in doomed]


def _leftovers(entries: list[FileEntry], known: Collection[str]) -> list[FileEntry]:
    """Unfinished files, files of no known export, and complete files a newer complete file
    of the same key and format replaced."""
    newest: dict[tuple[str, str], int] = defaultdict(int)
    for entry in entries:
        if entry.complete:
            slot = (entry.key, entry.format)
            newest[slot] = max(newest[slot], entry.id)
    return [
        entry
        for entry in entries
        if not entry.complete
        or entry.key not in known
        or entry.id != newest[(entry.key, entry.format)]
    ]
