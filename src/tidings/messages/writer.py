"""Group commit for accepted messages: many concurrent requests, one transaction.

On SQLite every transaction is a trip through the one connection and an fsync-free but
still serial commit; on PostgreSQL each commit is a WAL flush and each client's balance row
is a lock that its concurrent requests queue on. Collecting the requests that arrive while a
write is in progress and storing them together makes both costs per batch, not per request.
A request's answer is only given after its transaction committed, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.db.engine import transaction
from tidings.errors import Conflict, InsufficientFunds, TidingsError
from tidings.messages.acceptance import Acceptance, BalanceRace, PreparedSms, write_accepted

log = logging.getLogger("tidings.messages.writer")


@dataclass(slots=True)
class _Pending:
    prepared: PreparedSms
    done: asyncio.Future[Acceptance]


class AcceptQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        max_messages: int = 5_000,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.max_messages = max_messages
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="accept-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():  # nobody will write these: fail them, don't hang
            pending = self._queue.get_nowait()
            if not pending.done.done():
                pending.done.set_exception(TidingsError("the gateway is shutting down"))

    async def submit(self, prepared: PreparedSms) -> Acceptance:
        """Store a prepared request with whatever else is waiting; return once committed."""
        done: asyncio.Future[Acceptance] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(prepared, done))
        return await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].prepared.quote.items)
            while not self._queue.empty() and size < self.max_messages:
                pending = self._queue.get_nowait()
                batch.append(pending)
                size += len(pending.prepared.quote.items)
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(TidingsError("the gateway is shutting down"))
                raise
            except Exception as error:  # the database failed the whole write
                log.exception("accepting %d requests failed", len(batch))
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(error)

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            async with transaction(self.sessions) as session:
                results = await write_accepted(session, self.clock, [p.prepared for p in batch])
        except (BalanceRace, IntegrityError):
            # Another process changed a balance or took a reference meanwhile (PostgreSQL
            # with several API processes): decide each request in its own transaction.
            for pending in batch:
                await self._write_alone(pending)
            return
        for pending, result in zip(batch, results, strict=True):
            _settle(pending, result)

    async def _write_alone(self, pending: _Pending) -> None:
        result: Acceptance | TidingsError
        try:
            async with transaction(self.sessions) as session:
                [result] = await write_accepted(session, self.clock, [pending.prepared])
                if isinstance(result, TidingsError):
                    raise result  # roll back anything this request wrote
        except BalanceRace:
            cost = pending.prepared.quote.total_price
            result = InsufficientFunds(f"the balance does not cover {cost}")
        except IntegrityError:
            result = Conflict("a reference is used already", reason="duplicate_reference")
        except TidingsError as error:
            result = error
        _settle(pending, result)


def _settle(pending: _Pending, result: Acceptance | TidingsError) -> None:
    if pending.done.done():  # the requester went away (client disconnected)
        return
    if isinstance(result, TidingsError):
        pending.done.set_exception(result)
    else:
        pending.done.set_result(result)
