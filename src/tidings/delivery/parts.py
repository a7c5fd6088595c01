"""Long messages reported part by part: a receipt for any part settles the message.

A supplier that takes a long message as several submits (SMPP) gives each part its own id
and reports each part. The parts and their last statuses are rows (``message_parts``), so
this holds across restarts: the message is delivered once every part is delivered (seed 004:
``delivered_sms_parts`` reaching ``total_sms_parts``), fails as soon as one part fails, and
stays ``sent`` meanwhile with the part in the detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.delivery.repository import PartRepository, PartRow
from tidings.messages.changes import StatusChange
from tidings.messages.status import DELIVERED_STATUSES, FINAL_STATUSES, Status


@dataclass(frozen=True, slots=True)
class PartReport:
    supplier_message_id: str
    status: Status
    at: datetime
    detail: str | None


@dataclass(frozen=True, slots=True)
class PartSettlement:
    message_of: dict[str, int]  # part id -> message id, for the reports about known parts
    changes: list[StatusChange]  # what those reports do to their messages


async def settle_parts(
    session: AsyncSession,
    supplier_id: int,
    reports: Sequence[PartReport],
    known: dict[str, PartRow] | None = None,
) -> PartSettlement:
    """The message-level changes of reports about parts of long messages (others ignored);
    the parts' statuses are written in the caller's transaction. `known`: the parts the
    reports' ids name, when the caller has looked them up already."""
    repository = PartRepository(session)
    if known is None:
        known = await repository.find(supplier_id, (r.supplier_message_id for r in reports))
    if not known:
        return PartSettlement({}, [])
    parts = await repository.statuses(p.message_id for p in known.values())
    written: dict[int, str] = {}
    changes: list[StatusChange] = []
    for report in sorted(reports, key=lambda r: r.at):
        part = known.get(report.supplier_message_id)
        if part is None:
            continue
        states = parts.setdefault(part.message_id, {})
        current = states.get(part.seqnum)
        if current is None or Status(current) not in FINAL_STATUSES:
            states[part.seqnum] = written[part.id] = report.status.value
        where = f"part {part.seqnum}/{part.total}"
        status, detail = report.status, f"{where}: {report.detail or report.status.value}"
        if status in DELIVERED_STATUSES:
            delivered = sum(1 for s in states.values() if s is not None and s in DELIVERED_STATUSES)
            if delivered >= part.total:
                detail = f"all {part.total} parts: {report.detail or status.value}"
            else:
                status = Status.SENT
        changes.append(StatusChange(part.message_id, status, report.at, detail[:200]))
    await repository.set_statuses(written)
    return PartSettlement({sid: p.message_id for sid, p in known.items()}, changes)
