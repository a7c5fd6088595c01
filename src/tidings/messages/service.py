"""Moving message status: the one place where the status machine is applied.

Dispatch answers, supplier receipts and the sweeper all come through `apply_changes`, so
monotonicity, refunds and client webhooks hold for every path. The caller owns the
transaction. (Acceptance is in acceptance.py, look-ups in queries.py.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.messages.changes import AppliedChange, StatusChange
from tidings.messages.repository import MessageRepository
from tidings.messages.status import FINAL_STATUSES, Status, can_transition
from tidings.observability.logging import log_status_changes
from tidings.smpp_server.store import enqueue_smpp_receipts
from tidings.viber.fallback import start_fallbacks
from tidings.webhooks.service import enqueue_reports


@dataclass(slots=True)
class _Refunds:
    by_client: dict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    entries: list[tuple[int, Decimal, str, str | None]] = field(default_factory=list)


def _with_implied_deliveries(changes: Sequence[StatusChange]) -> list[StatusChange]:
    """A read receipt means the message was delivered: before each `read`, a `delivered`.

    It applies only where the message is not delivered yet (its delivery report was lost,
    or is racing behind: a receipt that beat the recording of its submit answer waits
    unmatched, and a later `read` would otherwise take the message straight from `sent` to
    `read`, so the client would never hear `delivered`). Elsewhere it changes nothing.
    """
    expanded: list[StatusChange] = []
    for change in changes:
        if change.status is Status.READ:
            expanded.append(
                replace(
                    change,
                    status=Status.DELIVERED,
                    detail="delivered (implied by read)",
                    supplier_message_id=None,
                    sent=False,
                )
            )
        expanded.append(change)
    return expanded


def _held_by_row(change: StatusChange, sent_now: bool) -> bool:
    """Whether the message row itself records this change, so that a `message_events` row
    would only repeat it: the hand-over (`time_sent`, set once) and a final status
    (`status`, `status_detail`, `time_dr`). History rows are kept for the rest (`unknown`, a
    final status a later one replaces); `MessageRepository.events` puts the two back."""
    if change.status is Status.SENT:
        return sent_now and change.detail is None
    return change.status in FINAL_STATUSES


async def apply_changes(
    session: AsyncSession, clock: Clock, changes: Sequence[StatusChange]
) -> list[AppliedChange]:
    """Apply status changes monotonically; return those that moved a message.

    Duplicates, late intermediate reports and anything after a final status change nothing.
    A status history row is written only for what the message row does not keep itself
    (`_held_by_row`): one message costs the database two rows fewer.
    A message that reaches a final status without ever being taken by a supplier (failed,
    expired before sending, rejected at submit) is refunded.
    """
    if not changes:
        return []
    repo = MessageRepository(session)
    # Plain records: the changes below are written with one executemany per column set, not
    # by the ORM's unit of work (which costs more than the rest of this function together).
    loaded = await repo.lock_for_update(sorted({c.message_id for c in changes}))
    by_id = {m.id: m for m in loaded}
    updates: dict[int, dict[str, object]] = {}
    applied: list[AppliedChange] = []
    events: list[dict[str, object]] = []
    refunds = _Refunds()
    for change in sorted(_with_implied_deliveries(changes), key=lambda c: c.at):
        message = by_id.get(change.message_id)
        if message is None:
            continue
        current = Status(message.status)
        row = updates.setdefault(message.id, {})
        sent_now = change.sent and message.time_sent is None
        if sent_now:
            message.time_sent = row["time_sent"] = change.at
        if change.supplier_message_id is not None:
            message.supplier_message_id = row["supplier_message_id"] = change.supplier_message_id
        if not can_transition(current, change.status):
            continue
        if current in FINAL_STATUSES and message.time_dr is not None:
            # The one move out of a final status (delivered → read): the row is about to
            # forget the first final status, so it becomes a history row now.
            events.append(
                {
                    "message_id": message.id,
                    "status": current.value,
                    "detail": message.status_detail,
                    "at": message.time_dr,
                }
            )
        message.status = row["status"] = change.status.value
        message.status_detail = row["status_detail"] = change.detail
        if message.due_at is not None and (change.sent or change.status in FINAL_STATUSES):
            # Its dispatch job is done: it leaves the queue's partial index with this same
            # row version (no job row to delete).
            message.due_at = row["due_at"] = None
            message.locked_until = row["locked_until"] = None
        if change.status in FINAL_STATUSES:
            message.time_dr = row["time_dr"] = change.at
            # We only pay a supplier for what it took, so what never left is refunded.
            if message.time_sent is None:
                refunds.by_client[message.client_id] += message.price
                refunds.entries.append(
                    (message.client_id, message.price, "refund", f"message:{message.id}")
                )
        if not _held_by_row(change, sent_now):
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
    # Same transaction: a report exists if and only if its status change committed.
    await enqueue_reports(session, clock, applied)
    await enqueue_smpp_receipts(session, clock, applied)
    # A Viber message that failed with an SMS alternative sends it, in this same transaction.
    await start_fallbacks(session, clock, applied)
    # Logged as applied, in the caller's transaction (a failed commit logs its own error).
    log_status_changes(applied)
    return applied
