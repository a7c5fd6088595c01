"""Opt-outs per client, counted when Prometheus scrapes (like the queue depths).

The list changes by inbound keywords, API and CLI calls in any process; a count from the
database at scrape time is right whichever process made the change, where a counter of
this process's changes would not be. Under `tidings serve --processes N` every process
reports the same counts: read them with max(), not sum().
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.optouts.repository import OptOutRepository

log = logging.getLogger("tidings.observability")

OPTOUTS_NAME = "tidings_optouts"
OPTOUTS_HELP = "Numbers on each client's opt-out list."


class OptOutCounts(Collector):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, max_age: float = 5.0) -> None:
        self.sessions = sessions
        self.max_age = max_age
        self.counts: dict[int, int] = {}
        self._counted_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """One GROUP BY over the index (client_id, msisdn), at most once per `max_age`."""
        async with self._lock:
            if self._counted_at is not None and time.monotonic() - self._counted_at < self.max_age:
                return
            async with self.sessions() as session:
                try:
                    self.counts = await OptOutRepository(session).counts()
                except DBAPIError:
                    # Not migrated here yet (an older database): leave the counts out rather
                    # than fail the whole scrape, as the queue depths do.
                    log.debug("opt-out counts left out (table not readable)")
                    self.counts = {}
            self._counted_at = time.monotonic()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(OPTOUTS_NAME, OPTOUTS_HELP, labels=["client_id"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(OPTOUTS_NAME, OPTOUTS_HELP, labels=["client_id"])
        for client_id, count in sorted(self.counts.items()):
            family.add_metric([str(client_id)], count)
        yield family
