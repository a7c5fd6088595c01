"""Group commit for delivery reports: concurrent DLR requests, one transaction.

Suppliers often report one receipt per HTTP request (seeds 001/002 show exactly that), many at
once. Storing each in its own transaction makes the commit, not the work, the bound. The
queue gathers whatever reports arrive while a write runs and stores them together, merged per
supplier; each caller gets its own receipt ids back once the transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.connectors.base import SupplierReport
from tidings.db.engine import transaction
from tidings.delivery.service import IngestResult, ingest_reports
from tidings.errors import TidingsError

log = logging.getLogger("tidings.delivery.reports")


@dataclass(slots=True)
class _Pending:
    supplier_id: int
    reports: Sequence[SupplierReport]
    done: asyncio.Future[list[int]]


class ReportQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        max_reports: int = 5_000,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.max_reports = max_reports
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="report-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.done.done():
                pending.done.set_exception(TidingsError("the gateway is shutting down"))

    async def submit(self, supplier_id: int, reports: Sequence[SupplierReport]) -> list[int]:
        """Store reports (with whatever else is waiting); their receipt ids, once committed."""
        if self._task is None:  # not started (CLI, tests): write alone, right away
            async with transaction(self.sessions) as session:
                result = await ingest_reports(session, self.clock, supplier_id, reports)
            return result.receipt_ids
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(supplier_id, reports, done))
        return await done

    async def __call__(self, supplier_id: int, reports: Sequence[SupplierReport]) -> None:
        """The ReportSink form, for connectors."""
        await self.submit(supplier_id, reports)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].reports)
            while not self._queue.empty() and size < self.max_reports:
                pending = self._queue.get_nowait()
                batch.append(pending)
                size += len(pending.reports)
            try:
                ids = await self._write(batch)
            except asyncio.CancelledError:
                _fail(batch, TidingsError("the gateway is shutting down"))
                raise
            except Exception as error:
                log.exception("storing %d reports failed", size)
                _fail(batch, error)
                continue
            for pending, receipt_ids in zip(batch, ids, strict=True):
                if not pending.done.done():
                    pending.done.set_result(receipt_ids)

    async def _write(self, batch: list[_Pending]) -> list[list[int]]:
        by_supplier: dict[int, list[int]] = defaultdict(list)
        for index, pending in enumerate(batch):
            by_supplier[pending.supplier_id].append(index)
        ids: list[list[int]] = [[] for _ in batch]
        async with transaction(self.sessions) as session:
            for supplier_id, indexes in by_supplier.items():
                merged = [report for i in indexes for report in batch[i].reports]
                result: IngestResult = await ingest_reports(
                    session, self.clock, supplier_id, merged
                )
                offset = 0
                for i in indexes:
                    count = len(batch[i].reports)
                    ids[i] = result.receipt_ids[offset : offset + count]
                    offset += count
        return ids


def _fail(batch: list[_Pending], error: BaseException) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(error)
