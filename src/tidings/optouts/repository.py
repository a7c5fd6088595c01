"""The only SQL of opt-outs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import cast

from sqlalchemy import Select, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.arrays import one_of
from tidings.db.prebuilt import dialect_of, one_of_param, one_of_values
from tidings.db.upsert import insert_for
from tidings.optouts.models import OptOut, OptOutSettings


@dataclass(frozen=True, slots=True)
class Confirmations:
    optout: str | None = None
    optin: str | None = None


_ROWS_PER_INSERT = 1_000
OPTOUTS = cast(Table, OptOut.__table__)


@cache
def _listed(dialect: str) -> Select[tuple[int, str]]:
    return select(OPTOUTS.c.client_id, OPTOUTS.c.msisdn).where(
        one_of_param(dialect, OPTOUTS.c.client_id, "client_ids"),
        one_of_param(dialect, OPTOUTS.c.msisdn, "msisdns"),
    )


class OptOutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def listed(
        self, client_ids: Iterable[int], msisdns: Iterable[str]
    ) -> set[tuple[int, str]]:
        """The (client, msisdn) pairs on the list among these clients and numbers.

        One statement for a whole write round (every request of every client in it): the
        product of the two arrays may name pairs nobody asked about, which the caller ignores;
        the unique index (client_id, msisdn) answers it with one index look-up per pair.
        """
        clients = sorted(set(client_ids))
        numbers = sorted(set(msisdns))
        if not clients or not numbers:
            return set()
        result = await self.session.execute(
            _listed(dialect_of(self.session)),
            {**one_of_values("client_ids", clients), **one_of_values("msisdns", numbers)},
        )
        return {(row.client_id, row.msisdn) for row in result}

    async def add(
        self,
        client_id: int,
        msisdns: Sequence[str],
        *,
        source: str,
        at: datetime,
        keyword: str | None = None,
    ) -> list[str]:
        """Put numbers on a client's list; the ones that were not on it already.

        ``INSERT … ON CONFLICT DO NOTHING RETURNING``: one statement, and two requests adding
        one number at once both succeed (the second adds nothing)."""
        if not msisdns:
            return []
        insert = insert_for(self.session)
        rows = [
            {
                "client_id": client_id,
                "msisdn": msisdn,
                "source": source,
                "keyword": keyword,
                "created_at": at,
            }
            for msisdn in dict.fromkeys(msisdns)
        ]
        added: list[str] = []
        # A multi-row VALUES binds 5 parameters a row: SQLite takes 32,766 at most.
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            result = await self.session.execute(
                insert(OptOut)
                .values(rows[start : start + _ROWS_PER_INSERT])
                .on_conflict_do_nothing(index_elements=["client_id", "msisdn"])
                .returning(OptOut.msisdn)
            )
            added += result.scalars()
        return added

    async def remove(self, client_id: int, msisdns: Sequence[str]) -> list[str]:
        """Take numbers off a client's list; the ones that were on it."""
        if not msisdns:
            return []
        result = await self.session.execute(
            delete(OptOut)
            .where(OptOut.client_id == client_id, one_of(self.session, OptOut.msisdn, msisdns))
            .returning(OptOut.msisdn)
        )
        return list(result.scalars())

    async def page(self, client_id: int, *, after: str | None, limit: int) -> list[OptOut]:
        """A client's list in msisdn order, from after `after` (the index's order: a page
        reads `limit` index entries whatever the list's size)."""
        query = select(OptOut).where(OptOut.client_id == client_id)
        if after is not None:
            query = query.where(OptOut.msisdn > after)
        result = await self.session.execute(query.order_by(OptOut.msisdn).limit(limit))
        return list(result.scalars())

    async def find(self, client_id: int, msisdn: str) -> OptOut | None:
        result = await self.session.execute(
            select(OptOut).where(OptOut.client_id == client_id, OptOut.msisdn == msisdn)
        )
        return result.scalar_one_or_none()

    async def count(self, client_id: int) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(OptOut).where(OptOut.client_id == client_id)
        )
        return int(result.scalar_one())

    async def counts(self) -> dict[int, int]:
        """Numbers on each client's list (clients with none are left out)."""
        result = await self.session.execute(
            select(OptOut.client_id, func.count()).group_by(OptOut.client_id)
        )
        return {int(client_id): int(n) for client_id, n in result.tuples()}

    async def confirmations(self, client_id: int) -> Confirmations:
        found = await self.session.get(OptOutSettings, client_id)
        if found is None:
            return Confirmations()
        return Confirmations(found.optout_confirmation, found.optin_confirmation)

    async def set_confirmations(
        self, client_id: int, *, optout: str | None, optin: str | None
    ) -> Confirmations:
        """Set either reply ('' clears it, None leaves it); the replies after the change."""
        found = await self.session.get(OptOutSettings, client_id)
        if optout is None and optin is None:
            return await self.confirmations(client_id)
        if found is None:
            found = OptOutSettings(client_id=client_id)
            self.session.add(found)
        if optout is not None:
            found.optout_confirmation = optout or None
        if optin is not None:
            found.optin_confirmation = optin or None
        await self.session.flush()
        return Confirmations(found.optout_confirmation, found.optin_confirmation)
