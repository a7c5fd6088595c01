"""Batching what concurrent deliver_sm carry into one sink call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from tidings.connectors.smpp.pdu import CommandStatus

__all__ = ["Batcher"]

log = logging.getLogger("tidings.smpp")

T = TypeVar("T")


class Batcher(Generic[T]):
    """Collects what concurrent deliver_sm carry (receipts, inbound messages) into one sink
    call (one transaction).

    ``put`` returns once the sink has stored its items (or raises what the sink raised),
    so the deliver_sm is answered only after what it carried is committed.
    """

    def __init__(
        self,
        sink: Callable[[int, Sequence[T]], Awaitable[None]],
        supplier_id: int,
        size: int,
        wait: float,
    ) -> None:
        self.sink = sink
        self.supplier_id = supplier_id
        self.size = size
        self.wait = wait
        self._items: list[tuple[list[T], asyncio.Future[int]]] = []
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._full = asyncio.Event()

    def put(self, reports: list[T]) -> asyncio.Future[int]:
        """A future that resolves to ESME_ROK once the items are stored."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._items.append((reports, future))
        self._count += len(reports)
        if self._count >= self.size:
            self._full.set()
        if self._task is None:
            self._task = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        try:
            while self._items:
                if self._count < self.size and self.wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.wait)
                items, self._items, self._count = self._items, [], 0
                self._full.clear()
                reports = [report for chunk, _ in items for report in chunk]
                try:
                    await self.sink(self.supplier_id, reports)
                except Exception as error:
                    log.warning("storing %d SMPP deliver_sm failed: %s", len(reports), error)
                    for _, future in items:
                        if not future.done():
                            future.set_exception(error)
                else:
                    for _, future in items:
                        if not future.done():
                            future.set_result(CommandStatus.ESME_ROK)
        finally:
            self._task = None

    async def drain(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
