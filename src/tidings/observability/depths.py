"""Queue depths, counted when Prometheus scrapes rather than on every event.

prometheus-client collects synchronously, the database is async: the `/metrics` handler
awaits `refresh()` (which counts at most once per `max_age` seconds, however many scrapes
come in), then renders, and `collect()` hands out the counts of the last refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.observability.repository import QUEUES, DepthRepository, Queue

log = logging.getLogger("tidings.observability")

DEPTH_NAME = "tidings_queue_depth"
DEPTH_HELP = "Rows waiting in a work queue (at most the cap: counts are bounded)."


class QueueDepths(Collector):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        queues: Sequence[Queue] = QUEUES,
        max_age: float = 1.0,
        cap: int = 1_000_000,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.queues = tuple(queues)
        self.max_age = max_age
        self.cap = cap
        self.depths: dict[str, int] = {}
        self._counted_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Count every queue, unless the last count is younger than `max_age`."""
        async with self._lock:  # concurrent scrapes share one count
            if self._counted_at is not None and time.monotonic() - self._counted_at < self.max_age:
                return
            now = self.clock.now()
            depths: dict[str, int] = {}
            async with self.sessions() as session:
                repository = DepthRepository(session)
                for queue in self.queues:
                    depth = await repository.count(queue, now, self.cap)
                    if depth is not None:
                        depths[queue.name] = depth
            missing = [q.name for q in self.queues if q.name not in depths]
            if missing:
                log.debug("queue depths left out (tables not readable): %s", missing)
            self.depths = depths
            self._counted_at = time.monotonic()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(DEPTH_NAME, DEPTH_HELP, labels=["queue"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(DEPTH_NAME, DEPTH_HELP, labels=["queue"])
        for name, depth in self.depths.items():
            family.add_metric([name], depth)
        yield family
