"""Every SQL statement of export files kept in the database (`export_files`, their chunks).

Short transactions only: a file of a gigabyte is a thousand chunks, each written and read
by a statement of its own, so no transaction or connection is held for a whole build or a
whole download.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.exports.models import ExportFile, ExportFileChunk


@dataclass(frozen=True, slots=True)
class FileEntry:
    """What the sweep needs to know of a file (never its bytes)."""

    id: int
    key: str
    format: str
    complete: bool
    updated_at: datetime


class ExportFileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, key: str, fmt: str, now: datetime) -> int:
        result = await self.session.execute(
            insert(ExportFile)
            .values(key=key, format=fmt, complete=False, size=0, updated_at=now)
            .returning(ExportFile.id)
        )
        return int(result.scalar_one())

    async def append(self, file_id: int, seq: int, data: bytes, now: datetime) -> bool:
        """Add a chunk to an unfinished file; False when the file is gone (discarded)."""
        touched = await self.session.execute(
            update(ExportFile)
            .where(ExportFile.id == file_id, ExportFile.complete.is_(False))
            .values(updated_at=now)
        )
        if touched.rowcount != 1:  # type: ignore[attr-defined]
            return False
        await self.session.execute(
            insert(ExportFileChunk).values(file_id=file_id, seq=seq, data=data)
        )
        return True

    async def complete(self, file_id: int, size: int, now: datetime) -> bool:
        """Make an unfinished file the one readers get; False when it is gone."""
        done = await self.session.execute(
            update(ExportFile)
            .where(ExportFile.id == file_id, ExportFile.complete.is_(False))
            .values(complete=True, size=size, updated_at=now)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    async def newest(self, key: str, fmt: str) -> tuple[int, int] | None:
        """(id, size) of the newest complete file of a key and format."""
        row = (
            await self.session.execute(
                select(ExportFile.id, ExportFile.size)
                .where(ExportFile.key == key, ExportFile.format == fmt, ExportFile.complete)
                .order_by(ExportFile.id.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else (int(row[0]), int(row[1]))

    async def chunk(self, file_id: int, seq: int) -> bytes | None:
        data = await self.session.scalar(
            select(ExportFileChunk.data).where(
                ExportFileChunk.file_id == file_id, ExportFileChunk.seq == seq
            )
        )
        return None if data is None else bytes(data)

    async def entries(self) -> list[FileEntry]:
        """Every file's bookkeeping: a few rows per export (at most 5 exports a client)."""
        rows = await self.session.execute(
            select(
                ExportFile.id,
                ExportFile.key,
                ExportFile.format,
                ExportFile.complete,
                ExportFile.updated_at,
            )
        )
        return [FileEntry(*row) for row in rows]

    async def ids_of(self, key: str, *, unfinished_only: bool) -> list[int]:
        query = select(ExportFile.id).where(ExportFile.key == key)
        if unfinished_only:
            query = query.where(ExportFile.complete.is_(False))
        return list((await self.session.scalars(query)).all())

    async def delete_ids(self, ids: Sequence[int]) -> None:
        """The chunks first: SQLite enforces ON DELETE CASCADE only with foreign keys on,
        and an explicit statement says what goes."""
        if not ids:
            return
        await self.session.execute(delete(ExportFileChunk).where(ExportFileChunk.file_id.in_(ids)))
        await self.session.execute(delete(ExportFile).where(ExportFile.id.in_(ids)))
