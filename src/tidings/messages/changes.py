"""A status change to apply, and one that was applied: what flows from suppliers to clients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
class AppliedChange:
    message: Message
    previous: Status
    change: StatusChange
