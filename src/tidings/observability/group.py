"""`/metrics` of `tidings serve --processes N`: every process's metrics in one scrape.

Each process keeps its own registry: its counters count what that process did. Behind one
HTTP port the kernel hands a scrape to any one of them, so each process also serves its own
metrics on a loopback port of its own, announced by a file in a folder the parent made, and
the process that gets `GET /metrics` gathers its siblings' and answers with all of them,
each sample labelled `process="<index>"` (sum by the other labels for the gateway's totals).
Queue depths are counted from the database and are the same in every process: read them
with max(), not sum(). A sibling that does not answer within a few seconds is left out of
that scrape (logged), rather than failing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tidings.observability.exposition import MetricsServer, scrape
from tidings.observability.metrics import Metrics

log = logging.getLogger("tidings.observability")

SIBLING_TIMEOUT = 5.0
PROCESS_LABEL = "process"


class ProcessGroupMetrics:
    def __init__(self, metrics: Metrics, folder: Path, index: int) -> None:
        self.metrics = metrics
        self.folder = folder
        self.index = index
        self._server = MetricsServer(metrics, "127.0.0.1", 0)
        self._announced: Path | None = None

    async def start(self) -> None:
        await self._server.start()
        announced = self.folder / f"{self.index}.port"
        draft = self.folder / f".{self.index}.{os.getpid()}"
        draft.write_text(str(self._server.port))
        draft.replace(announced)  # whole or not at all for a sibling that reads it
        self._announced = announced

    async def stop(self) -> None:
        if self._announced is not None:
            with contextlib.suppress(OSError):
                self._announced.unlink()
            self._announced = None
        await self._server.stop()

    async def scrape(self) -> bytes:
        texts = {self.index: (await scrape(self.metrics)).decode()}
        siblings = {}
        for entry in self.folder.glob("*.port"):
            with contextlib.suppress(ValueError, OSError):
                index = int(entry.stem)
                if index != self.index:
                    siblings[index] = int(entry.read_text())
        fetched = await asyncio.gather(
            *(_fetch(port) for port in siblings.values()), return_exceptions=True
        )
        for index, text in zip(siblings, fetched, strict=True):
            if isinstance(text, BaseException):
                log.warning("metrics of serve process %d: %s", index, text)
            else:
                texts[index] = text
        return merge(texts)


async def _fetch(port: int) -> str:
    async with asyncio.timeout(SIBLING_TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            await writer.drain()
            answer = await reader.read()  # the server closes after one answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode("latin-1"))
    return body.decode()


def merge(texts: Mapping[int, str]) -> bytes:
    """One exposition of several processes' texts, every sample labelled by its process."""
    families: dict[str, Metric] = {}
    for index, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            merged.samples.extend(
                sample._replace(labels={**sample.labels, PROCESS_LABEL: str(index)})
                for sample in family.samples
            )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families
