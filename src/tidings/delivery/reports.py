"""Group commit for delivery reports: concurrent DLR requests, one transaction.

Suppliers often report one receipt per HTTP request (seeds 001/002 show exactly that), many at
once. Storing each in its own transaction makes the commit, not the work, the bound. The
queue gathers whatever reports arrive while a write runs and stores them together, merged per
supplier; each caller gets its own receipt ids back once the transaction has committed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.connectors.base import SupplierReport
from tidings.db.engine import transaction
from tidings.delivery.service import ingest_reports, match_late_receipts
from tidings.groupcommit import GroupCommit
from tidings.messages.changes import AppliedChange
from tidings.observability.metrics import Metrics

log = logging.getLogger("tidings.delivery")


class ReportQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        max_reports: int = 5_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.metrics = metrics
        self._rounds: GroupCommit[_Reports, list[int]] = GroupCommit(
            self._write,
            weight=lambda reports: len(reports.reports),
            max_weight=max_reports,
            name="report-writer",
        )

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def submit(self, supplier_id: int, reports: Sequence[SupplierReport]) -> list[int]:
        """Store reports (with whatever else is waiting); their receipt ids, once committed."""
        if not self._rounds.running:  # not started (CLI, tests): write alone, right away
            async with transaction(self.sessions) as session:
                result = await ingest_reports(session, self.clock, supplier_id, reports)
            self._observe([(supplier_id, reports)], result.applied)
            await self._match_after_commit(result.unmatched_ids)
            return result.receipt_ids
        return await self._rounds.submit(_Reports(supplier_id, reports))

    async def __call__(self, supplier_id: int, reports: Sequence[SupplierReport]) -> None:
        """The ReportSink form, for connectors."""
        await self.submit(supplier_id, reports)

    async def _write(self, batch: Sequence[_Reports]) -> list[list[int]]:
        by_supplier: dict[int, list[int]] = defaultdict(list)
        for index, pending in enumerate(batch):
            by_supplier[pending.supplier_id].append(index)
        ids: list[list[int]] = [[] for _ in batch]
        stored: list[tuple[int, Sequence[SupplierReport]]] = []
        applied: list[AppliedChange] = []
        unmatched: list[int] = []
        async with transaction(self.sessions) as session:
            for supplier_id, indexes in by_supplier.items():
                merged = [report for i in indexes for report in batch[i].reports]
                result = await ingest_reports(session, self.clock, supplier_id, merged)
                stored.append((supplier_id, merged))
                applied.extend(result.applied)
                unmatched += result.unmatched_ids
                offset = 0
                for i in indexes:
                    count = len(batch[i].reports)
                    ids[i] = result.receipt_ids[offset : offset + count]
                    offset += count
        self._observe(stored, applied)
        await self._match_after_commit(unmatched)
        return ids

    async def _match_after_commit(self, receipt_ids: Sequence[int]) -> None:
        """Receipts that matched no message: their submit answers may have committed while
        this round ran (see match_late_receipts). Best effort: the sweeper catches the rest."""
        if not receipt_ids:
            return
        try:
            async with transaction(self.sessions) as session:
                applied = await match_late_receipts(
                    session, self.clock, limit=len(receipt_ids), ids=receipt_ids
                )
        except Exception:
            log.exception("report-writer: matching %d receipts again failed", len(receipt_ids))
            return
        self._observe([], applied)

    def _observe(
        self,
        stored: Sequence[tuple[int, Sequence[SupplierReport]]],
        applied: Sequence[AppliedChange],
    ) -> None:
        """Count what the committed round stored and moved."""
        if self.metrics is not None:
            for supplier_id, reports in stored:
                self.metrics.reports_received(supplier_id, reports)
            self.metrics.changes_applied(applied)


@dataclass(frozen=True, slots=True)
class _Reports:
    supplier_id: int
    reports: Sequence[SupplierReport]
