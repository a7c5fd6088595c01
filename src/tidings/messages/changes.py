"""A status change to apply, and one that was applied: what flows from suppliers to clients."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

from tidings.messages.models import Message
from tidings.messages.status import Status


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
class MessageRecord:
    """One ``messages`` row as plain data: what the status-change path reads and hands on.

    The hot path (thousands of changes a second) loads rows with Core into these rather than
    into ORM ``Message`` objects, whose identity map and instrumentation cost more than the
    rest of applying a change. The fields are the table's columns, same names (a unit test
    keeps the two in step).
    """

    id: int
    client_id: int
    channel: str
    source: str
    msisdn: str
    country: str
    originator: str
    body: str
    encoding: str
    parts: int
    tariff: int
    price: Decimal
    currency: str
    status: str
    expires_at: datetime
    time_in: datetime
    task_id: int | None = None
    reference: str | None = None
    status_detail: str | None = None
    callback_url: str | None = None
    supplier_id: int | None = None
    supplier_message_id: str | None = None
    cost: Decimal | None = None
    cost_currency: str | None = None
    send_at: datetime | None = None
    time_sent: datetime | None = None
    time_dr: datetime | None = None
    parent_id: int | None = None
    due_at: datetime | None = None
    locked_until: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    reply_to: int | None = None  # the inbound message this answers (docs/inbound.md)


@dataclass(slots=True)
class AppliedChange:
    message: MessageRecord
    previous: Status
    change: StatusChange


RECORD_FIELDS = tuple(field.name for field in fields(MessageRecord))

# Renderers shared by the query APIs (ORM objects) and the status-change path (records).
MessageData: TypeAlias = Message | MessageRecord
