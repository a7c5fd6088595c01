"""What the built-in simulators share: reading their ratio options (SMS, Viber, HLR), and
the supplier side of the SMS and Viber ones (ids, seeded randomness, reports owed)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from tidings.clock import Clock
from tidings.connectors.base import ReportSink, SupplierReport
from tidings.db.outage import Backoff, describe, is_connection_error
from tidings.errors import ConfigurationError

log = logging.getLogger("tidings.connectors")

# How often reports that failed for another reason than an outage are offered again.
_OTHER_FAILURES = 5


def ratio_option(options: dict[str, Any], name: str, default: float, *, kind: str) -> float:
    """Option `name` as a share between 0 and 1; `kind` names the simulator in errors."""
    try:
        value = float(options.get(name, default))
    except (TypeError, ValueError):
        raise ConfigurationError(f"{kind} option {name} must be a number") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{kind} option {name} must be between 0 and 1")
    return value


class PendingReports:
    """Reports a simulator owes and has not sent yet. They live in memory only: like a real
    carrier that crashes, a simulator that stops forgets them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, report: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(report)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


class SimulatedSupplier:
    """The part of a simulated supplier that is not about its behaviour: its ids, its seeded
    randomness, where its reports go and the reports it still owes. Subclasses read their
    own options first, then call this `__init__`."""

    def __init__(
        self, supplier_id: int, options: dict[str, Any], clock: Clock, *, id_prefix: str
    ) -> None:
        self.supplier_id = supplier_id
        self.clock = clock
        self.random = random.Random(options.get("seed"))
        # Ids unique across restarts, so a restarted simulator never reuses an old id.
        self._id_prefix = f"{id_prefix}-{uuid.uuid4().hex[:8]}"
        self._counter = itertools.count(1)
        self._sink: ReportSink | None = None
        self._pending = PendingReports()

    async def start(self, reports: ReportSink) -> None:
        self._sink = reports

    async def stop(self) -> None:
        await self._pending.cancel()

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._counter)}"

    async def _deliver(self, rows: Sequence[SupplierReport]) -> None:
        """Hand reports to the gateway as a carrier posts them: while the gateway cannot
        store them (its database restarting), try again with a growing delay rather than
        forget them — otherwise their messages would stay `sent` (docs/operations.md)."""
        assert self._sink is not None, "submit before start"
        await self._hand_over(self._sink, rows)

    async def _hand_over(
        self, sink: Callable[[int, Sequence[Any]], Awaitable[None]], rows: Sequence[Any]
    ) -> None:
        """Give `rows` to a sink of the gateway (reports, inbound messages), retrying
        through an outage."""
        backoff = Backoff(maximum=2.0)
        failures = 0
        while True:
            try:
                await sink(self.supplier_id, rows)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                # A real fault (not an outage) is tried a few times, then given up, logged.
                if not is_connection_error(error) and failures >= _OTHER_FAILURES:
                    log.exception("simulator %s: %d items dropped", self.supplier_id, len(rows))
                    return
                delay = backoff.next_delay()
                log.warning(
                    "simulator %s: items not taken (%s); retrying in %.1f s",
                    self.supplier_id,
                    describe(error),
                    delay,
                )
                await asyncio.sleep(delay)
