"""A histogram fed in batches: one lock per batch instead of one per observation.

prometheus-client's Histogram takes a lock and walks its bounds on every `observe` (about
2 µs); a round of status changes brings hundreds of accept-to-final times at once. Here a
batch is sorted into buckets with `bisect` and added under one lock, and the series are
rendered by `collect` like any custom collector.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class _Series:
    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size  # per bucket, not cumulative
        self.total = 0.0


class BatchHistogram(Collector):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = bounds
        self._les = [_le(b) for b in bounds]
        self._series: dict[tuple[str, ...], _Series] = {}
        self._lock = threading.Lock()  # a scrape may run in another thread (not ours today)

    def observe_many(self, labelvalues: Sequence[object], values: Iterable[float]) -> None:
        key = tuple("" if v is None else str(v) for v in labelvalues)
        bounds = self.bounds
        size = len(bounds)
        added = [0] * size
        total = 0.0
        for value in values:
            added[bisect_left(bounds, value)] += 1  # le: value <= bound
            total += value
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(size)
            counts = series.counts
            for i, n in enumerate(added):
                if n:
                    counts[i] += n
            series.total += total

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(k, list(s.counts), s.total) for k, s in self._series.items()]
        for key, counts, total in snapshot:
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, n in zip(self._les, counts, strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            family.add_metric(list(key), buckets, total)
        yield family


def _le(bound: float) -> str:
    """The `le` label of a bound, spelled as the client library spells it ("1.0", "+Inf")."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text
