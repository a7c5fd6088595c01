"""Looking messages and tasks up for the APIs (reads only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.errors import NotFound
from tidings.messages.models import Message, MessageEvent, Task
from tidings.messages.repository import MessageRepository
from tidings.messages.status import Status


async def get_message(session: AsyncSession, client_id: int, message_id: int) -> Message:
    message = await MessageRepository(session).get(client_id, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}", reason="message_not_found")
    return message


async def get_message_by_reference(
    session: AsyncSession, client_id: int, reference: str
) -> Message:
    message = await MessageRepository(session).get_by_reference(client_id, reference)
    if message is None:
        raise NotFound(f"no message with reference {reference!r}", reason="message_not_found")
    return message


@dataclass(frozen=True, slots=True)
class TaskSummary:
    task: Task
    counts: dict[str, int]
    sent: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, *statuses: Status) -> int:
        return sum(self.counts.get(status.value, 0) for status in statuses)


async def get_task_summary(session: AsyncSession, client_id: int, task_id: int) -> TaskSummary:
    messages = MessageRepository(session)
    task = await messages.get_task(client_id, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}", reason="task_not_found")
    return TaskSummary(
        task=task,
        counts=await messages.task_counts(task_id),
        sent=await messages.task_sent_count(task_id),
    )


async def history(
    session: AsyncSession, message: Message
) -> list[tuple[str, datetime, str | None]]:
    """The message's statuses in order, acceptance first."""
    initial = Status.SCHEDULED if message.send_at else Status.QUEUED
    entries: list[tuple[str, datetime, str | None]] = [(initial.value, message.time_in, None)]
    events: Sequence[MessageEvent] = await MessageRepository(session).events(message)
    entries.extend((event.status, event.at, event.detail) for event in events)
    return entries
