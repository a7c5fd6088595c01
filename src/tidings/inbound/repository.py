"""Every SQL statement of numbers and inbound messages."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Client
from tidings.db.arrays import is_postgres, one_of
from tidings.db.upsert import insert_for
from tidings.inbound.models import InboundMessage, InboundPart, Number
from tidings.routing.models import Supplier

# Supplier kinds a reply can go out through (an SMS connector).
SMS_KINDS = ("simulator", "http", "smpp")


@dataclass(frozen=True, slots=True)
class Owner:
    """What the fan-out of an inbound message needs of its client."""

    client_id: int
    mo_url: str | None
    retry_schedule: str
    smpp: bool  # the client has SMPP credentials: deliver_sm on a receiver bind


class NumberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, number: Number) -> Number:
        self.session.add(number)
        await self.session.flush()
        return number

    async def find(self, number: str, keyword: str) -> Number | None:
        result = await self.session.execute(
            select(Number).where(Number.number == number, Number.keyword == keyword)
        )
        return result.scalar_one_or_none()

    async def list(self, client_id: int | None = None) -> Sequence[Number]:
        query = select(Number).order_by(Number.number, Number.keyword)
        if client_id is not None:
            query = query.where(Number.client_id == client_id)
        return (await self.session.execute(query)).scalars().all()

    async def remove(self, number: Number) -> None:
        await self.session.delete(number)
        await self.session.flush()

    async def of_recipients(self, numbers: Collection[str]) -> Sequence[Number]:
        """Every assignment of these numbers (all keywords), for matching."""
        if not numbers:
            return []
        result = await self.session.execute(
            select(Number).where(one_of(self.session, Number.number, numbers))
        )
        return result.scalars().all()


class InboundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, row: dict[str, Any]) -> int | None:
        """Insert one message; None when (supplier, supplier message id) is already stored.

        ON CONFLICT DO NOTHING rather than a look-up first: two deliveries of one message
        racing in two transactions end as one row, and neither transaction fails.
        """
        statement = (
            insert_for(self.session)(InboundMessage)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["supplier_id", "supplier_message_id"])
            .returning(InboundMessage.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def by_supplier_ref(self, supplier_id: int | None, reference: str) -> int | None:
        result = await self.session.execute(
            select(InboundMessage.id).where(
                InboundMessage.supplier_id == supplier_id,
                InboundMessage.supplier_message_id == reference,
            )
        )
        return result.scalar_one_or_none()

    async def by_fingerprint(
        self, supplier_id: int, fingerprint: str, since: datetime
    ) -> int | None:
        """A message of the same PDU content received since `since` (an SMSC's resend)."""
        result = await self.session.execute(
            select(InboundMessage.id)
            .where(
                InboundMessage.supplier_id == supplier_id,
                InboundMessage.fingerprint == fingerprint,
                InboundMessage.received_at >= since,
            )
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def get(self, inbound_id: int) -> InboundMessage | None:
        return await self.session.get(InboundMessage, inbound_id)

    async def page(
        self,
        client_id: int,
        after_id: int,
        since: datetime | None,
        limit: int,
    ) -> Sequence[InboundMessage]:
        """A client's messages with id > after_id (and received since `since`), by id."""
        query = (
            select(InboundMessage)
            .where(InboundMessage.client_id == client_id, InboundMessage.id > after_id)
            .order_by(InboundMessage.id)
            .limit(limit)
        )
        if since is not None:
            query = query.where(InboundMessage.received_at >= since)
        return (await self.session.execute(query)).scalars().all()

    async def latest(self, limit: int, unrouted_only: bool = False) -> Sequence[InboundMessage]:
        """The newest messages (operators: console and CLI)."""
        query = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
        if unrouted_only:
            query = query.where(InboundMessage.client_id.is_(None))
        return (await self.session.execute(query)).scalars().all()

    async def count_unrouted(self) -> int:
        result = await self.session.execute(
            select(func.count()).where(InboundMessage.client_id.is_(None))
        )
        return int(result.scalar_one())

    async def owners(self, client_ids: Collection[int]) -> dict[int, Owner]:
        if not client_ids:
            return {}
        result = await self.session.execute(
            select(Client.id, Client.mo_url, Client.retry_schedule, Client.smpp_system_id).where(
                one_of(self.session, Client.id, client_ids)
            )
        )
        return {
            row[0]: Owner(row[0], row[1], row[2], row[3] is not None) for row in result.tuples()
        }

    # --- parts of long messages ---

    async def lock_assembly(self, supplier_id: int, assembly: str) -> None:
        """Serialise the transactions storing parts of one message (PostgreSQL: parts that
        came on binds of two worker processes), so the one that adds the last part sees the
        others'; held until the transaction ends. SQLite's writes are serial already."""
        if is_postgres(self.session):
            await self.session.execute(
                select(
                    func.pg_advisory_xact_lock(
                        func.hashtextextended(f"{supplier_id}|{assembly}", 0)
                    )
                )
            )

    async def add_part(self, row: dict[str, Any]) -> None:
        await self.session.execute(insert(InboundPart), [row])

    async def parts(self, supplier_id: int, assembly: str) -> Sequence[InboundPart]:
        result = await self.session.execute(
            select(InboundPart)
            .where(InboundPart.supplier_id == supplier_id, InboundPart.assembly == assembly)
            .order_by(InboundPart.seqnum, InboundPart.id)
        )
        return result.scalars().all()

    async def stale_assemblies(self, before: datetime, limit: int) -> list[tuple[int, str]]:
        """Long messages with a part received before `before` (the table holds only the few
        parts still waiting, so no index is needed for this)."""
        result = await self.session.execute(
            select(InboundPart.supplier_id, InboundPart.assembly)
            .where(InboundPart.received_at < before)
            .group_by(InboundPart.supplier_id, InboundPart.assembly)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in result.tuples()]

    async def drop_parts(self, part_ids: Sequence[int]) -> None:
        if part_ids:
            await self.session.execute(
                delete(InboundPart).where(one_of(self.session, InboundPart.id, part_ids))
            )


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """What a reply takes from the inbound message it answers."""

    inbound_id: int
    sender: str
    recipient: str
    supplier_id: int | None  # None: gone, disabled or not an SMS supplier: routing decides


async def reply_targets(
    session: AsyncSession, client_id: int, inbound_ids: Collection[int]
) -> dict[int, ReplyTarget]:
    """The client's own inbound messages among `inbound_ids` (others are not found)."""
    if not inbound_ids:
        return {}
    result = await session.execute(
        select(
            InboundMessage.id,
            InboundMessage.sender,
            InboundMessage.recipient,
            Supplier.id,
            Supplier.enabled,
            Supplier.kind,
        )
        .outerjoin(Supplier, Supplier.id == InboundMessage.supplier_id)
        .where(
            InboundMessage.client_id == client_id,
            one_of(session, InboundMessage.id, inbound_ids),
        )
    )
    return {
        row[0]: ReplyTarget(
            row[0], row[1], row[2], row[3] if row[4] and row[5] in SMS_KINDS else None
        )
        for row in result.tuples()
    }
