"""Statistics exports: asking for one, finding, listing and deleting them, and building files.

The request stores an export (`create_export`) and answers at once; a worker builds the files
(`build_files`) by streaming the messages from the database through the writers into the
storage, one batch at a time, so memory stays flat whatever the export's size.
"""

from __future__ import annotations

import asyncio
import calendar
import re
import secrets
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tidings.clock import Clock
from tidings.errors import Conflict, InvalidRequest, NotFound, TidingsError
from tidings.exports.filters import ExportFilter
from tidings.exports.formats import ALL_FORMATS, Writer, formats_for, writer_for
from tidings.exports.models import BUILDING, FAILED, PENDING, READY, Export
from tidings.exports.repository import ExportRepository, stream_messages
from tidings.exports.rows import RowRenderer
from tidings.exports.storage import ExportStorage, StagedFile
from tidings.numbering import CountryTable

MAX_EXPORTS = 5  # kept per client at once (seed 004)
KEY = re.compile(r"[0-9a-f]{32}")


def one_month_after(moment: datetime) -> datetime:
    """The same day and time next month; the month's last day when it has no such day."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def new_key() -> str:
    return secrets.token_hex(16)


# --- The API's side ---------------------------------------------------------------------------


async def create_export(
    session: AsyncSession,
    clock: Clock,
    client_id: int,
    spec: ExportFilter,
    callback_url: str | None,
) -> str:
    """Store a new export for the worker to build; its key. Error 92 on a sixth export."""
    repo = ExportRepository(session)
    await repo.lock_client(client_id)
    now = clock.now()
    if await repo.count_kept(client_id, now) >= MAX_EXPORTS:
        raise Conflict(
            f"a client keeps at most {MAX_EXPORTS} exports; delete one first",
            reason="export_limit",
        )
    key = new_key()
    await repo.add(
        Export(
            key=key,
            client_id=client_id,
            state=PENDING,
            filters=spec.to_json(),
            callback_url=callback_url,
            created_at=now,
            expires_at=one_month_after(now),
            attempts=0,
        )
    )
    return key


async def find_export(session: AsyncSession, clock: Clock, client_id: int, key: str) -> Export:
    export = None
    if KEY.fullmatch(key):
        export = await ExportRepository(session).get(client_id, key, clock.now())
    if export is None:
        raise NotFound(f"no export {key!r}", reason="export_not_found")
    return export


async def list_exports(session: AsyncSession, clock: Clock, client_id: int) -> list[Export]:
    return await ExportRepository(session).of_client(client_id, clock.now())


async def delete_export(session: AsyncSession, clock: Clock, client_id: int, key: str) -> None:
    """Forget an export (its files are the caller's to delete once this commits)."""
    if not (
        KEY.fullmatch(key) and await ExportRepository(session).delete(client_id, key, clock.now())
    ):
        raise NotFound(f"no export {key!r}", reason="export_not_found")


def message_type_of(export: Export) -> str | None:
    value = export.filters.get("message_type")
    return value if isinstance(value, str) else None


def public_state(export: Export) -> str:
    """pending, building, ready, empty (ready, no rows) or failed."""
    if export.state == READY and not export.row_count:
        return "empty"
    return export.state


def check_downloadable(export: Export, fmt: str) -> None:
    """Why this export's file in `fmt` can't be served now, if it can't (errors 81, 91, 93)."""
    if fmt not in ALL_FORMATS:
        raise InvalidRequest(
            f"format must be one of {', '.join(ALL_FORMATS)}, not {fmt!r}", reason="bad_format"
        )
    if fmt not in formats_for(message_type_of(export)):
        raise InvalidRequest(
            "csv is only made for an export asked with a message_type",
            reason="csv_needs_message_type",
        )
    if export.state == FAILED:
        raise TidingsError(
            f"the export could not be built ({export.last_error}); delete it and ask again",
            reason="export_failed",
        )
    if export.state in (PENDING, BUILDING):
        raise Conflict("the export is not ready yet", reason="export_not_ready")
    if not export.row_count:
        raise NotFound("no message matches the export's filter", reason="export_empty")


# --- Building the files -----------------------------------------------------------------------


class LeaseLost(Exception):
    """The build's lease was taken over or its export deleted: stop, keep nothing."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    row_count: int
    sizes: dict[str, int]


class _Files:
    """The staged files of one build and their writers; one step at a time writes to them."""

    def __init__(self, writers: Mapping[str, Writer]) -> None:
        self.writers = writers
        self.staged: dict[str, StagedFile] = {}

    @classmethod
    async def open(cls, storage: ExportStorage, key: str, writers: Mapping[str, Writer]) -> _Files:
        files = cls(writers)
        await storage.discard_parts(key)
        try:
            for fmt, writer in writers.items():
                files.staged[fmt] = await storage.stage(key, fmt)
                await files.staged[fmt].write(writer.begin())
        except BaseException:
            await files.discard()
            raise
        return files

    async def write(self, chunks: Mapping[str, bytes]) -> None:
        for fmt, data in chunks.items():
            await self.staged[fmt].write(data)

    async def commit(self) -> dict[str, int]:
        for fmt, writer in self.writers.items():
            await self.staged[fmt].write(writer.end())
        return {fmt: await staged.commit() for fmt, staged in self.staged.items()}

    async def discard(self) -> None:
        for staged in self.staged.values():
            await staged.discard()


def _render(
    renderer: RowRenderer, writers: Mapping[str, Writer], records: Sequence[Any]
) -> tuple[dict[str, bytes], int]:
    """One batch's bytes in each format (CPU work: run in a thread)."""
    rows = renderer.render_many(records)
    if not rows:
        return {}, 0
    return {fmt: writer.rows(rows) for fmt, writer in writers.items()}, len(rows)


async def _render_and_write(renderer: RowRenderer, files: _Files, records: Sequence[Any]) -> int:
    chunks, count = await asyncio.to_thread(_render, renderer, files.writers, records)
    await files.write(chunks)
    return count


async def build_files(
    reader: AsyncEngine,
    storage: ExportStorage,
    countries: CountryTable,
    *,
    client_id: int,
    key: str,
    spec: ExportFilter,
    batch_size: int,
    formats: Sequence[str] | None = None,
    still_held: Callable[[], bool] = lambda: True,
) -> BuildResult:
    """Stream the export's messages into its files (all its formats in one pass).

    Each batch is rendered in a thread and written while the next is fetched, so the event
    loop stays free and the database and the CPU work side by side. The files appear only
    when complete (`StagedFile.commit`); on any failure, or when `still_held()` turns False,
    nothing is left behind.
    """
    chosen = tuple(formats) if formats is not None else formats_for(spec.message_type)
    writers = {fmt: writer_for(fmt, spec.message_type) for fmt in chosen}
    renderer = RowRenderer(countries, spec.operator)
    # Steps are shielded from cancellation (a thread can't be stopped) and waited for before
    # the files are discarded, so nothing writes to a file that is gone.
    steps: list[asyncio.Future[Any]] = []

    def step(work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        future = asyncio.ensure_future(work)
        steps[:] = [other for other in steps if not other.done()]
        steps.append(future)
        return future

    files: _Files | None = None
    count = 0
    opening = step(_Files.open(storage, key, writers))
    try:
        built: _Files = await asyncio.shield(opening)
        files = built
        pending: asyncio.Future[Any] | None = None
        async with reader.connect() as connection:
            async for batch in stream_messages(connection, client_id, spec, batch_size):
                if pending is not None:
                    count += await asyncio.shield(pending)
                if not still_held():
                    raise LeaseLost(key)
                pending = step(_render_and_write(renderer, built, batch))
            if pending is not None:
                count += await asyncio.shield(pending)
        if not still_held():
            raise LeaseLost(key)
        sizes: dict[str, int] = await asyncio.shield(step(built.commit()))
    except BaseException:
        await asyncio.gather(*steps, return_exceptions=True)
        if files is None and not opening.cancelled() and opening.exception() is None:
            files = opening.result()  # cancelled while the files were being opened
        if files is not None:
            await asyncio.shield(step(files.discard()))
        raise
    return BuildResult(count, sizes)
