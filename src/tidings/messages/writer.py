"""The accept queue: concurrent create requests stored by one transaction per round."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.db.engine import dialect_name, one_statement, transaction
from tidings.db.prebuilt import POSTGRESQL
from tidings.errors import Conflict, InsufficientFunds, OptedOut, TidingsError
from tidings.groupcommit import GroupCommit
from tidings.messages.acceptance import SMS, Acceptance, PreparedSms
from tidings.messages.admission_repository import UncoveredRound
from tidings.messages.storing import BalanceRace, without_refused, write_accepted
from tidings.observability.logging import log_accepted
from tidings.observability.metrics import Metrics


class AcceptQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        max_messages: int = 5_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.metrics = metrics
        self._one_statement = dialect_name(sessions) == POSTGRESQL
        self._rounds: GroupCommit[PreparedSms, Acceptance] = GroupCommit(
            self._write,
            weight=lambda prepared: len(prepared.quote.items),
            max_weight=max_messages,
            name="accept-writer",
        )

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def submit(self, prepared: PreparedSms) -> Acceptance:
        """Store a prepared request with whatever else is waiting; return once committed."""
        return await self.submit_nowait(prepared)

    def submit_nowait(self, prepared: PreparedSms) -> asyncio.Future[Acceptance]:
        """`submit` without a task: the future settles once the request is committed (its
        acceptance counted and logged by then) or refused."""
        done = self._rounds.submit_nowait(prepared)
        done.add_done_callback(functools.partial(self._accepted, prepared))
        return done

    def _accepted(self, prepared: PreparedSms, done: asyncio.Future[Acceptance]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            if isinstance(error, OptedOut) and self.metrics is not None:
                count = len(prepared.quote.items)
                self.metrics.optout_refused(prepared.caller.client_id, SMS, count)
            return
        acceptance = done.result()
        stored = without_refused(prepared, acceptance.refused)
        if self.metrics is not None:
            self.metrics.messages_accepted(stored, SMS)
            self.metrics.optout_refused(prepared.caller.client_id, SMS, len(acceptance.refused))
        log_accepted(stored, acceptance, SMS)

    async def _write(self, batch: Sequence[PreparedSms]) -> list[Acceptance | TidingsError]:
        try:
            if self._one_statement and not any(p.request.after_write for p in batch):
                # PostgreSQL: the reads, then the write as one statement, in autocommit
                # (messages/admission_repository.py): two round trips, not six.
                try:
                    async with one_statement(self.sessions) as session:
                        return await write_accepted(session, self.clock, batch, one_statement=True)
                except UncoveredRound:
                    pass  # nothing was written: the transaction below decides each request
            async with transaction(self.sessions) as session:
                return await write_accepted(session, self.clock, batch)
        except (BalanceRace, IntegrityError):
            # Another process changed a balance or took a reference meanwhile (PostgreSQL
            # with several API processes): decide each request in its own transaction.
            return [await self._write_alone(prepared) for prepared in batch]

    async def _write_alone(self, prepared: PreparedSms) -> Acceptance | TidingsError:
        try:
            async with transaction(self.sessions) as session:
                [result] = await write_accepted(session, self.clock, [prepared])
        except BalanceRace:
            return InsufficientFunds(f"the balance does not cover {prepared.quote.total_price}")
        except IntegrityError:
            return Conflict("a reference is used already", reason="duplicate_reference")
        return result
