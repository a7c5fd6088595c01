"""The queue-depth counts: the only SQL of the observability package.

Each queue is one entry of `QUEUES`: a name (the `queue` label) and the filter of the rows
waiting in it. Counts are bounded (`COUNT` over at most `cap` rows), so a scrape stays cheap
however large a backlog grows; a depth equal to the cap means "at least that many".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.delivery.models import DispatchJob
from tidings.exports.models import BUILDING as EXPORT_BUILDING
from tidings.exports.models import PENDING as EXPORT_PENDING
from tidings.exports.models import Export
from tidings.hlr.models import HlrLookup
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.repository import PENDING as WEBHOOK_PENDING

# A filter as of `now`: the rows that are waiting in the queue.
Waiting = Callable[[datetime], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    table: Any  # a mapped class
    waiting: Waiting


def _unleased(now: datetime) -> ColumnElement[bool]:
    return or_(DispatchJob.locked_until.is_(None), DispatchJob.locked_until < now)


# One line per queue. The filters match what the workers claim, so "due" is what a worker
# would take right now; every one of them is served by an index of its table.
QUEUES: tuple[Queue, ...] = (
    Queue("dispatch_due", DispatchJob, lambda now: and_(DispatchJob.due_at <= now, _unleased(now))),
    Queue(
        "dispatch_later", DispatchJob, lambda now: and_(DispatchJob.due_at > now, _unleased(now))
    ),
    Queue("dispatch_in_flight", DispatchJob, lambda now: DispatchJob.locked_until >= now),
    Queue(
        "webhooks_pending", WebhookDelivery, lambda now: WebhookDelivery.state == WEBHOOK_PENDING
    ),
    Queue(
        "webhooks_due",
        WebhookDelivery,
        lambda now: and_(
            WebhookDelivery.state == WEBHOOK_PENDING, WebhookDelivery.next_attempt_at <= now
        ),
    ),
    Queue("exports_pending", Export, lambda now: Export.state == EXPORT_PENDING),
    Queue("exports_building", Export, lambda now: Export.state == EXPORT_BUILDING),
    Queue("hlr_pending", HlrLookup, lambda now: HlrLookup.due_at.is_not(None)),
)


class DepthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self, queue: Queue, now: datetime, cap: int) -> int | None:
        """Rows waiting in `queue`, at most `cap`; None when its table cannot be read."""
        bounded = select(literal(1)).select_from(queue.table).where(queue.waiting(now)).limit(cap)
        try:
            value = await self.session.scalar(select(func.count()).select_from(bounded.subquery()))
        except DBAPIError:
            # A table another release adds (not migrated here yet): leave that queue out
            # rather than fail the whole scrape. PostgreSQL needs the failed statement undone.
            await self.session.rollback()
            return None
        return int(value or 0)
