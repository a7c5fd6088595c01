"""Group commit: many concurrent callers, one transaction for all that is waiting.

On SQLite every transaction is a trip through the one connection; on PostgreSQL each commit is
a WAL flush (and a client's balance row a lock its requests queue on). Whatever arrives while
one write runs is written by the next one, together, so those costs are paid per round rather
than per request, and a round grows by itself with the load. Each caller gets its own result
(or exception) only after the round's transaction has committed, so nothing is acknowledged
before it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tidings.db.engine import inline_statements
from tidings.db.outage import describe, is_connection_error
from tidings.errors import TidingsError

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("tidings.groupcommit")

# Writes one round: a result or an exception per item, in order.
RoundWriter = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


@dataclass(slots=True)
class _Waiting(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        write: RoundWriter[T, R],
        *,
        weight: Callable[[T], int],
        max_weight: int,
        name: str,
    ) -> None:
        self._write = write
        self._weight = weight
        self._max_weight = max_weight
        self._name = name
        self._queue: asyncio.Queue[_Waiting[T, R]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():  # nobody will write these: fail them, don't hang
            _settle(self._queue.get_nowait(), TidingsError("the gateway is shutting down"))

    async def submit(self, item: T) -> R:
        return await self.submit_nowait(item)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queue an item; the future settles after its round committed (or failed). For
        callers that handle thousands of items a second without a task each (SMPP)."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiting(item, done))
        return done

    async def _run(self) -> None:
        with inline_statements():  # short transactions, the hottest there are
            await self._rounds()

    async def _rounds(self) -> None:
        while True:
            round_ = [await self._queue.get()]
            weight = self._weight(round_[0].item)
            while not self._queue.empty() and weight < self._max_weight:
                waiting = self._queue.get_nowait()
                round_.append(waiting)
                weight += self._weight(waiting.item)
            try:
                results = await self._write([w.item for w in round_])
            except asyncio.CancelledError:
                for waiting in round_:
                    _settle(waiting, TidingsError("the gateway is shutting down"))
                raise
            except Exception as error:  # the database failed the whole round
                # Each caller gets the error and decides: the APIs answer 503, the
                # simulators and lanes try again once the database is back.
                if is_connection_error(error):
                    log.warning(
                        "%s: a round of %d failed, the database is unavailable (%s)",
                        self._name,
                        len(round_),
                        describe(error),
                    )
                else:
                    log.exception("%s: a round of %d failed", self._name, len(round_))
                results = [error] * len(round_)
            for waiting, result in zip(round_, results, strict=True):
                _settle(waiting, result)


def _settle(waiting: _Waiting[T, R], result: R | BaseException) -> None:
    if waiting.done.done():  # the caller went away (its client disconnected)
        return
    if isinstance(result, BaseException):
        waiting.done.set_exception(result)
    else:
        waiting.done.set_result(result)
