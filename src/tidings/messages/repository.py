from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Insert, Select, Table, bindparam, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.ids import allocate_ids
from tidings.db.prebuilt import POSTGRESQL, dialect_of, one_of_param, one_of_values
from tidings.messages import change_statements as statements
from tidings.messages.changes import MessageRecord
from tidings.messages.models import Message, MessageEvent, Task, status_predicate
from tidings.messages.status import FINAL_STATUSES, Status

MESSAGES = cast(Table, Message.__table__)
TASKS = cast(Table, Task.__table__)


@cache
def _insert(table: Table) -> Insert:
    return insert(table)


@cache
def _references_in_use(dialect: str) -> Select[tuple[str]]:
    return select(MESSAGES.c.reference).where(
        MESSAGES.c.client_id == bindparam("client_id"),
        one_of_param(dialect, MESSAGES.c.reference, "references"),
    )


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_task(self, task: Task) -> Task:
        self.session.add(task)
        await self.session.flush()
        return task

    async def take_ids(self, count: int) -> list[int]:
        """`count` new ids for messages or tasks (they draw from the same numbers)."""
        return await allocate_ids(self.session, MESSAGES, count, shared_with=(TASKS,))

    async def insert_many(
        self, rows: Sequence[dict[str, Any]], ids: Sequence[int] | None = None
    ) -> list[int]:
        """Insert messages with one executemany; the new ids come back in the rows' order.
        `ids`: taken already (messages/admission_repository.py), else taken here."""
        if ids is None:
            ids = await self.take_ids(len(rows))
        await self.session.execute(
            _insert(MESSAGES), [{**row, "id": id_} for id_, row in zip(ids, rows, strict=True)]
        )
        return list(ids)

    async def insert_tasks(
        self, rows: Sequence[dict[str, Any]], ids: Sequence[int] | None = None
    ) -> list[int]:
        if not rows:
            return []
        # Task ids are taken from the messages' numbers, so that `GET /sms/{id}` is never
        # both a message and a task (docs/api.md, "Short form").
        if ids is None:
            ids = await self.take_ids(len(rows))
        await self.session.execute(
            _insert(TASKS), [{**row, "id": id_} for id_, row in zip(ids, rows, strict=True)]
        )
        return list(ids)

    async def references_in_use(self, client_id: int, references: Iterable[str]) -> list[str]:
        result = await self.session.execute(
            _references_in_use(dialect_of(self.session)),
            {"client_id": client_id, **one_of_values("references", references)},
        )
        return [row[0] for row in result]

    async def get(self, client_id: int, message_id: int) -> Message | None:
        result = await self.session.execute(
            select(Message).where(Message.id == message_id, Message.client_id == client_id)
        )
        return result.scalar_one_or_none()

    async def get_by_reference(self, client_id: int, reference: str) -> Message | None:
        result = await self.session.execute(
            select(Message).where(Message.client_id == client_id, Message.reference == reference)
        )
        return result.scalar_one_or_none()

    async def get_task(self, client_id: int, task_id: int) -> Task | None:
        result = await self.session.execute(
            select(Task).where(Task.id == task_id, Task.client_id == client_id)
        )
        return result.scalar_one_or_none()

    async def task_counts(self, task_id: int) -> dict[str, int]:
        result = await self.session.execute(
            select(Message.status, func.count())
            .where(Message.task_id == task_id)
            .group_by(Message.status)
        )
        return {status: count for status, count in result.tuples()}

    async def task_sent_count(self, task_id: int) -> int:
        result = await self.session.execute(
            select(func.count()).where(Message.task_id == task_id, Message.time_sent.is_not(None))
        )
        return int(result.scalar_one())

    async def events(self, message: Message) -> list[MessageEvent]:
        """The message's status changes after acceptance, in the status machine's order.

        The hand-over and the final status are not stored as rows (the message row holds
        them: `time_sent`; `status`, `status_detail`, `time_dr`), so they are rebuilt here
        (transient objects, never added to the session); rows written before that rule
        (or a `delivered` that a `read` replaced) are read as they are.
        """
        result = await self.session.execute(
            select(MessageEvent)
            .where(MessageEvent.message_id == message.id)
            .order_by(MessageEvent.at, MessageEvent.id)
        )
        stored = list(result.scalars().all())
        seen = {event.status for event in stored}
        rebuilt: list[MessageEvent] = []
        if message.time_sent is not None and Status.SENT.value not in seen:
            rebuilt.append(
                MessageEvent(message_id=message.id, status=Status.SENT.value, at=message.time_sent)
            )
        if (
            message.status in {s.value for s in FINAL_STATUSES}
            and message.time_dr is not None
            and message.status not in seen
        ):
            rebuilt.append(
                MessageEvent(
                    message_id=message.id,
                    status=message.status,
                    detail=message.status_detail,
                    at=message.time_dr,
                )
            )
        # The status machine's order (statuses only move forward), then time: a report's
        # time is the supplier's, which may be before our record of the hand-over (a fast
        # receipt). Queued again (failover), the hand-over, in flight, then final statuses,
        # the one on the row last (stored ones are what it replaced).
        order = {Status.SENT.value: 1, Status.UNKNOWN.value: 2}
        finals = {s.value for s in FINAL_STATUSES}

        def phase(event: MessageEvent) -> int:
            if event.status in finals:
                return 3 + (event in rebuilt)
            return order.get(event.status, 0)

        return sorted(stored + rebuilt, key=lambda event: (phase(event), event.at))

    async def add_events(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(
                statements.event_insert(statements.dialect_of(self.session)), list(rows)
            )

    async def update_columns(self, updates: dict[int, dict[str, Any]]) -> None:
        """Set columns of messages by id: one executemany per distinct set of columns."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for message_id, values in updates.items():
            if values:
                groups.setdefault(tuple(sorted(values)), []).append({"_id": message_id, **values})
        dialect = statements.dialect_of(self.session)
        for columns, rows in groups.items():
            if dialect == POSTGRESQL and len(rows) > 1:
                ids = [row["_id"] for row in rows]
                arrays = {column: [row[column] for row in rows] for column in columns}
                await self.session.execute(
                    statements.column_update_many(dialect, columns),
                    {"_ids": ids, "_least": min(ids), "_greatest": max(ids), **arrays},
                )
                continue
            await self.session.execute(statements.column_update(dialect, columns), rows)

    async def references(self, message_ids: Sequence[int]) -> dict[int, str | None]:
        """The client's reference of each of these messages."""
        result = await self.session.execute(
            statements.references(statements.dialect_of(self.session)),
            statements.one_of_values("b_ids", message_ids),
        )
        return {message_id: reference for message_id, reference in result.tuples()}

    async def lock_for_update(self, message_ids: Sequence[int]) -> list[MessageRecord]:
        """These messages' rows, locked for this transaction (plain records, no ORM objects)."""
        result = await self.session.execute(
            statements.lock_for_update(statements.dialect_of(self.session)),
            statements.one_of_values("b_ids", message_ids),
        )
        return [MessageRecord(*row) for row in result]

    async def expiring(self, statuses: Iterable[str], before: datetime, limit: int) -> list[int]:
        result = await self.session.execute(
            select(Message.id)
            .where(text(status_predicate(frozenset(statuses))), Message.expires_at < before)
            .order_by(Message.expires_at)
            .limit(limit)
        )
        return [row[0] for row in result]

    async def expiring_unleased(
        self, statuses: Iterable[str], before: datetime, limit: int
    ) -> list[int]:
        """Pending messages past validity whose dispatch job no worker holds right now."""
        result = await self.session.execute(
            select(Message.id)
            .where(
                text(status_predicate(frozenset(statuses))),
                Message.expires_at < before,
                or_(Message.locked_until.is_(None), Message.locked_until < before),
            )
            .order_by(Message.expires_at)
            .limit(limit)
        )
        return [row[0] for row in result]
