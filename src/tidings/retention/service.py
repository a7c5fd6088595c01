"""Retention: what `tidings db prune` and the workers' daily run do.

PostgreSQL: the weekly partitions whose week ended more than `retention_days` ago are
detached and dropped whole, after their still-open messages are put back (they land in the
DEFAULT partition); the coming weeks' partitions are made. SQLite: the closed messages taken
before the cutoff are deleted in batches, with everything that hangs off them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.db.engine import transaction
from tidings.db.partitions import (
    PARENT,
    Dropped,
    count_rows,
    database_now,
    drop_week,
    ensure_weeks,
    is_partitioned,
    partitions,
    prune_default,
)
from tidings.retention.repository import RetentionRepository

log = logging.getLogger(__name__)

JOB = "history"  # the maintenance_runs row of the daily run
EVERY = timedelta(days=1)
BATCH = 1000  # messages per DELETE round on SQLite


@dataclass
class PruneReport:
    cutoff: datetime
    partitions: list[Dropped] = field(default_factory=list)  # PostgreSQL
    created: list[str] = field(default_factory=list)  # partitions made for the coming weeks
    # Messages deleted row by row: SQLite's batches; on PostgreSQL those of the DEFAULT
    # partition (open when their week was pruned, closed since).
    deleted: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dropped": [{**asdict(d), "week": d.week.isoformat()} for d in self.partitions],
            "messages_removed": self.deleted + sum(d.rows - d.kept for d in self.partitions),
            "messages_kept_open": sum(d.kept for d in self.partitions),
            "created": self.created,
        }


def cutoff_for(now: datetime, retention_days: int) -> datetime:
    return now - timedelta(days=retention_days)


async def prune(
    sessions: async_sessionmaker[AsyncSession], now: datetime, retention_days: int
) -> PruneReport:
    """Remove the history past retention; each partition (or batch) in its own transaction,
    so a lock that cannot be had in time stops the run without undoing what was done."""
    report = PruneReport(cutoff_for(now, retention_days))
    async with transaction(sessions) as session:
        partitioned = await is_partitioned(session)
        if partitioned:
            # The weeks to make are those of the ids to come: the database's clock stamps them.
            report.created = await ensure_weeks(session, await database_now(session))
    if partitioned:
        async with sessions() as session:
            expired = [
                p
                for p in await partitions(session, PARENT)
                if p.ends_at is not None and p.ends_at <= report.cutoff
            ]
        for partition in expired:
            async with sessions() as session:
                rows = await count_rows(session, partition)
            async with transaction(sessions) as session:
                report.partitions.append(await drop_week(session, partition, rows))
        async with transaction(sessions) as session:
            report.deleted = await prune_default(session, report.cutoff)
        return report
    while True:
        async with transaction(sessions) as session:
            repository = RetentionRepository(session)
            ids = await repository.expired_closed(report.cutoff, BATCH)
            if ids:
                await repository.delete_messages(ids)
        report.deleted += len(ids)
        if len(ids) < BATCH:
            return report


class HistoryMaintenance:
    """The workers' daily run of `prune`, scheduled by a row (maintenance_runs), not a timer:
    a restart does not run it again, and of several workers only the one that claims the row
    runs it. Called from the sweeper; between runs it only compares the time."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, retention_days: int
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.retention_days = retention_days
        self._next_look: datetime | None = None

    async def run_if_due(self) -> PruneReport | None:
        now = self.clock.now()
        if self._next_look is not None and now < self._next_look:
            return None
        async with self.sessions() as session:
            last = await RetentionRepository(session).last_run(JOB)
        if last is not None and now < last + EVERY:
            self._next_look = last + EVERY
            return None
        async with transaction(self.sessions) as session:
            claimed = await RetentionRepository(session).claim(JOB, now, now - EVERY)
        self._next_look = now + EVERY
        if not claimed:
            return None
        try:
            report = await prune(self.sessions, now, self.retention_days)
        except BaseException:
            # Not done: give the run back, to be tried again within the hour (by any worker).
            async with transaction(self.sessions) as session:
                await RetentionRepository(session).set_last_run(JOB, last)
            self._next_look = now + timedelta(hours=1)
            raise
        log.info("history pruned: %s", report.as_json())
        return report
