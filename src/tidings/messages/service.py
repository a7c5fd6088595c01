"""Accepting messages, quoting them, answering for them, and moving their status.

Every API adapter calls into here with the internal request model; nothing here knows
about a wire format. The caller owns the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.errors import (
    NotFound,
)
from tidings.messages.models import Message, MessageEvent, Task
from tidings.messages.repository import MessageRepository
from tidings.messages.status import FINAL_STATUSES, Status, can_transition

SMS = "sms"


# --- Looking messages up -------------------------------------------------------------


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
    events: Sequence[MessageEvent] = await MessageRepository(session).events(message.id)
    entries.extend((event.status, event.at, event.detail) for event in events)
    return entries


# --- Moving status -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusChange:
    message_id: int
    status: Status
    at: datetime
    detail: str | None = None
    supplier_message_id: str | None = None
    # Set when this change is the hand-over to a supplier.
    sent: bool = False


@dataclass(slots=True)
class AppliedChange:
    message: Message
    previous: Status
    change: StatusChange


@dataclass(slots=True)
class _Refunds:
    by_client: dict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    entries: list[tuple[int, Decimal, str, str | None]] = field(default_factory=list)


async def apply_changes(
    session: AsyncSession, clock: Clock, changes: Sequence[StatusChange]
) -> list[AppliedChange]:
    """Apply status changes monotonically; return those that moved a message.

    Duplicates, late intermediate reports and anything after a final status change nothing.
    A message that reaches a final status without ever being taken by a supplier (failed,
    expired before sending, rejected at submit) is refunded.
    """
    if not changes:
        return []
    repo = MessageRepository(session)
    loaded = await repo.lock_for_update(sorted({c.message_id for c in changes}))
    # Detached: the changes below are written with one executemany per column set, not by
    # the unit of work (which costs more than the rest of this function together).
    for row_object in loaded:
        session.expunge(row_object)
    by_id = {m.id: m for m in loaded}
    updates: dict[int, dict[str, object]] = {}
    applied: list[AppliedChange] = []
    events: list[dict[str, object]] = []
    refunds = _Refunds()
    for change in sorted(changes, key=lambda c: c.at):
        message = by_id.get(change.message_id)
        if message is None:
            continue
        current = Status(message.status)
        row = updates.setdefault(message.id, {})
        if change.sent and message.time_sent is None:
            message.time_sent = row["time_sent"] = change.at
        if change.supplier_message_id is not None:
            message.supplier_message_id = row["supplier_message_id"] = change.supplier_message_id
        if not can_transition(current, change.status):
            continue
        message.status = row["status"] = change.status.value
        message.status_detail = row["status_detail"] = change.detail
        if change.status in FINAL_STATUSES:
            message.time_dr = row["time_dr"] = change.at
            # We only pay a supplier for what it took, so what never left is refunded.
            if message.time_sent is None:
                refunds.by_client[message.client_id] += message.price
                refunds.entries.append(
                    (message.client_id, message.price, "refund", f"message:{message.id}")
                )
        events.append(
            {
                "message_id": message.id,
                "status": change.status.value,
                "detail": change.detail,
                "at": change.at,
            }
        )
        applied.append(AppliedChange(message=message, previous=current, change=change))
    await repo.update_columns(updates)
    await repo.add_events(events)
    clients = ClientRepository(session)
    for client_id, amount in refunds.by_client.items():
        await clients.credit(client_id, amount)
    await LedgerRepository(session).add_many(refunds.entries, clock.now())
    # Imported here because the webhook formats render through the API layer, which
    # imports this module. Same transaction: a report exists iff its change committed.
    from tidings.webhooks.service import enqueue_reports

    await enqueue_reports(session, clock, applied)
    return applied
