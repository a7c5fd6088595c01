"""Margins: what clients paid for the messages suppliers took, less what those suppliers cost.

Only messages a supplier took (time_sent set) count: the others were refunded and cost
nothing. A message's cost is stored at acceptance (and again at a failover) in the client's
price currency when an exchange rate converts it, so a margin is a plain exact sum; a cost
left in another currency (no rate) is reported apart, never mixed in. These reports are for
the gateway's operators only: nothing a client can reach shows a supplier or a cost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Client
from tidings.errors import InvalidRequest
from tidings.messages.models import Message
from tidings.routing.models import Supplier

GROUPS = ("client", "supplier", "country")


@dataclass(frozen=True, slots=True)
class MarginRow:
    client_id: int
    client: str
    supplier_id: int | None
    supplier: str | None
    country: str
    currency: str
    messages: int
    price: Decimal
    cost: Decimal  # in `currency`
    margin: Decimal
    without_cost: int  # messages with no known cost (not in `cost`)
    other_currency: int  # messages whose cost no rate converted (not in `cost`)


class MarginRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def totals(self, since: datetime, until: datetime) -> list[MarginRow]:
        """Per client, supplier, country and currency, of messages accepted in [since, until)
        that a supplier took."""
        converted = Message.cost_currency == Message.currency
        result = await self.session.execute(
            select(
                Message.client_id,
                Client.name,
                Message.supplier_id,
                Supplier.name,
                Message.country,
                Message.currency,
                func.count(),
                func.sum(Message.price),
                func.sum(case((converted, Message.cost), else_=None)),
                func.count(case((Message.cost.is_(None), 1), else_=None)),
                func.count(case((Message.cost.is_not(None) & ~converted, 1), else_=None)),
            )
            .join(Client, Client.id == Message.client_id)
            .outerjoin(Supplier, Supplier.id == Message.supplier_id)
            .where(
                Message.time_in >= since,
                Message.time_in < until,
                Message.time_sent.is_not(None),
            )
            .group_by(
                Message.client_id,
                Client.name,
                Message.supplier_id,
                Supplier.name,
                Message.country,
                Message.currency,
            )
            .order_by(Message.client_id, Message.supplier_id, Message.country)
        )
        rows: list[MarginRow] = []
        for (
            client_id,
            client,
            supplier_id,
            supplier,
            country,
            currency,
            n,
            price,
            cost,
            *rest,
        ) in result:
            price = _money(price)
            cost = _money(cost)
            rows.append(
                MarginRow(
                    client_id,
                    client,
                    supplier_id,
                    supplier,
                    country,
                    currency,
                    int(n),
                    price,
                    cost,
                    price - cost,
                    int(rest[0]),
                    int(rest[1]),
                )
            )
        return rows

    async def messages(
        self, since: datetime, until: datetime, batch: int = 5000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every counted message with its price, cost and margin, in id order (keyset pages)."""
        after = 0
        while True:
            result = await self.session.execute(
                select(
                    Message.id,
                    Message.client_id,
                    Supplier.name,
                    Message.msisdn,
                    Message.country,
                    Message.time_in,
                    Message.status,
                    Message.price,
                    Message.currency,
                    Message.cost,
                    Message.cost_currency,
                )
                .outerjoin(Supplier, Supplier.id == Message.supplier_id)
                .where(
                    Message.id > after,
                    Message.time_in >= since,
                    Message.time_in < until,
                    Message.time_sent.is_not(None),
                )
                .order_by(Message.id)
                .limit(batch)
            )
            page = result.all()
            for row in page:
                mid, client_id, supplier, msisdn, country, time_in, status = row[:7]
                price, currency, cost, cost_currency = row[7:]
                same = cost is not None and cost_currency == currency
                yield {
                    "message_id": mid,
                    "client_id": client_id,
                    "supplier": supplier,
                    "msisdn": msisdn,
                    "country": country,
                    "time_in": time_in,
                    "status": status,
                    "price": price,
                    "currency": currency,
                    "cost": cost,
                    "cost_currency": cost_currency,
                    # A cost in another currency is not subtracted (as in the totals).
                    "margin": price - cost if same else price,
                }
            if len(page) < batch:
                return
            after = page[-1][0]


def _money(value: Decimal | None) -> Decimal:
    """A SUM of a Money column (decoded from micro-units by the column type), or 0."""
    return Decimal("0.000000") if value is None else value


def summarize(rows: list[MarginRow], by: str) -> list[dict[str, Any]]:
    """Totals per client, supplier or country (and currency: never summed across)."""
    if by not in GROUPS:
        raise InvalidRequest(f"by must be one of {', '.join(GROUPS)}")
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if by == "client":
            key: tuple[Any, ...] = (row.client_id, row.client)
        elif by == "supplier":
            key = (row.supplier_id, row.supplier)
        else:
            key = (row.country,)
        entry = totals.setdefault(
            (*key, row.currency),
            {
                by: key[-1],
                **({f"{by}_id": key[0]} if len(key) == 2 else {}),
                "currency": row.currency,
                "messages": 0,
                "price": Decimal("0.000000"),
                "cost": Decimal("0.000000"),
                "margin": Decimal("0.000000"),
                "without_cost": 0,
                "other_currency": 0,
            },
        )
        entry["messages"] += row.messages
        entry["price"] += row.price
        entry["cost"] += row.cost
        entry["margin"] += row.margin
        entry["without_cost"] += row.without_cost
        entry["other_currency"] += row.other_currency
    return list(totals.values())
