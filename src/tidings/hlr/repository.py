"""Every SQL statement of HLR lookups: store, find, claim due work, record answers."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.arrays import one_of, one_of_selected
from tidings.db.ids import allocate_ids
from tidings.hlr.models import HlrLookup
from tidings.wakeups import HLR, wake_after_commit


@dataclass(frozen=True, slots=True)
class ClaimedLookup:
    id: int
    msisdn: str
    provider_id: int
    provider_ref: str | None
    attempts: int  # consecutive failed tries, this claim included
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class FinishedLookup:
    id: int
    client_id: int
    reference: str
    msisdn: str
    network: str | None
    status: str
    ported: bool
    roaming: bool
    created_at: datetime
    status_at: datetime
    price: Decimal
    callback_url: str | None


class HlrRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def recent_networks(self, msisdns: Collection[str], since: datetime) -> dict[str, str]:
        """The network (MCCMNC) of each number's latest HLR result since `since` that had
        one, whoever asked for it (HLR routing: docs/routing.md)."""
        if not msisdns:
            return {}
        result = await self.session.execute(
            select(HlrLookup.msisdn, HlrLookup.network)
            .where(
                HlrLookup.msisdn.in_(list(msisdns)),
                HlrLookup.status_at >= since,
                HlrLookup.network.is_not(None),
            )
            .order_by(HlrLookup.status_at, HlrLookup.id)
        )
        return {msisdn: network for msisdn, network in result}  # the latest wins

    async def references_taken(self, client_id: int, references: Collection[str]) -> dict[str, int]:
        """Those of `references` this client has used already, with their lookups' ids."""
        if not references:
            return {}
        result = await self.session.execute(
            select(HlrLookup.reference, HlrLookup.id).where(
                HlrLookup.client_id == client_id,
                one_of(self.session, HlrLookup.reference, references),
            )
        )
        return {reference: id_ for reference, id_ in result.tuples()}

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert lookups with ids allocated up front (one executemany); their ids, in order."""
        if not rows:
            return []
        table = cast(Table, HlrLookup.__table__)
        wake_after_commit(self.session, HLR)
        ids = await allocate_ids(self.session, table, len(rows))
        await self.session.execute(
            insert(table), [{**row, "id": id_} for id_, row in zip(ids, rows, strict=True)]
        )
        return ids

    async def get(self, client_id: int, lookup_id: int) -> HlrLookup | None:
        result = await self.session.execute(
            select(HlrLookup).where(HlrLookup.client_id == client_id, HlrLookup.id == lookup_id)
        )
        return result.scalar_one_or_none()

    async def get_by_reference(self, client_id: int, reference: str) -> HlrLookup | None:
        result = await self.session.execute(
            select(HlrLookup).where(
                HlrLookup.client_id == client_id, HlrLookup.reference == reference
            )
        )
        return result.scalar_one_or_none()

    async def finished(self, ids: Collection[int]) -> list[FinishedLookup]:
        """What the result callbacks and refunds of these lookups need (no ORM objects)."""
        if not ids:
            return []
        h = HlrLookup
        result = await self.session.execute(
            select(*(getattr(h, name) for name in FinishedLookup.__slots__))
            .where(one_of(self.session, h.id, ids))
            .order_by(h.id)
        )
        return [FinishedLookup(*row) for row in result.tuples()]

    # --- The worker's side ------------------------------------------------------------------

    async def claim(
        self,
        provider_ids: Collection[int],
        now: datetime,
        lease_until: datetime,
        limit: int,
    ) -> list[ClaimedLookup]:
        """Lease up to `limit` due lookups of running providers, oldest due first.

        On PostgreSQL the inner SELECT locks with SKIP LOCKED, so concurrent workers lease
        different lookups and never wait on each other; on SQLite BEGIN IMMEDIATE serialises.
        """
        if not provider_ids:
            return []
        table = cast(Table, HlrLookup.__table__)
        claimable = (
            select(table.c.id)
            .where(
                table.c.due_at <= now,
                one_of(self.session, table.c.provider_id, provider_ids),
                or_(table.c.locked_until.is_(None), table.c.locked_until < now),
            )
            .order_by(table.c.due_at, table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.execute(
            update(table)
            .where(one_of_selected(self.session, table.c.id, claimable))
            .values(locked_until=lease_until, attempts=table.c.attempts + 1)
            .returning(
                table.c.id,
                table.c.msisdn,
                table.c.provider_id,
                table.c.provider_ref,
                table.c.attempts,
                table.c.created_at,
                table.c.sent_at,
            )
        )
        return sorted(
            (
                ClaimedLookup(
                    id=row[0],
                    msisdn=row[1],
                    provider_id=row[2],
                    provider_ref=row[3],
                    attempts=row[4],
                    created_at=row[5],
                    sent_at=row[6],
                )
                for row in result
            ),
            key=lambda lookup: lookup.id,
        )

    async def update_held(
        self, lease: datetime, changes: Sequence[dict[str, Any]], columns: Collection[str]
    ) -> list[int]:
        """Apply `changes` (each with `lookup_id` and the `columns`) to lookups still leased
        until `lease`: a worker whose lease ran out and was taken over changes nothing.
        The ids changed."""
        if not changes:
            return []
        table = cast(Table, HlrLookup.__table__)
        held = select(table.c.id).where(
            one_of(self.session, table.c.id, [c["lookup_id"] for c in changes]),
            table.c.locked_until == lease,
        )
        still_held = {row[0] for row in await self.session.execute(held)}
        rows = [c for c in changes if c["lookup_id"] in still_held]
        if rows:
            await self.session.execute(
                update(table)
                .where(and_(table.c.id == bindparam("lookup_id"), table.c.locked_until == lease))
                .values({column: bindparam(f"new_{column}") for column in columns}),
                [
                    {"lookup_id": c["lookup_id"], **{f"new_{k}": c[k] for k in columns}}
                    for c in rows
                ],
            )
        return [c["lookup_id"] for c in rows]
