"""The console's inbound page: the latest inbound messages, and those no number matched
(the `unrouted` owner), for operators to see and assign the number (docs/inbound.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.inbound.repository import InboundRepository

PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class InboundView:
    messages: list[dict[str, Any]]
    unrouted_total: int
    unrouted_only: bool


async def inbound_page(db: AsyncSession, unrouted_only: bool) -> InboundView:
    repo = InboundRepository(db)
    latest = await repo.latest(PAGE_SIZE, unrouted_only=unrouted_only)
    return InboundView(
        [
            {
                "id": m.id,
                "client_id": m.client_id,
                "supplier_id": m.supplier_id,
                "sender": m.sender,
                "recipient": m.recipient,
                "keyword": m.keyword,
                "text": m.text,
                "received_at": m.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            }
            for m in latest
        ],
        await repo.count_unrouted(),
        unrouted_only,
    )
