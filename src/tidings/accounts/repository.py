from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import cast

from sqlalchemy import Select, Table, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import ApiKey, Client
from tidings.db.prebuilt import dialect_of, one_of_param, one_of_values

CLIENTS = cast(Table, Client.__table__)


@cache
def _balances(dialect: str) -> Select[tuple[int, Decimal]]:
    return select(CLIENTS.c.id, CLIENTS.c.balance).where(
        one_of_param(dialect, CLIENTS.c.id, "client_ids")
    )


@cache
def _debit_if_covered() -> Update:
    amount = bindparam("amount", type_=CLIENTS.c.balance.type)
    return (
        update(CLIENTS)
        .where(CLIENTS.c.id == bindparam("client_id"), CLIENTS.c.balance >= amount)
        .values(balance=CLIENTS.c.balance - amount)
    )


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, client: Client) -> Client:
        self.session.add(client)
        await self.session.flush()
        return client

    async def get(self, client_id: int) -> Client | None:
        return await self.session.get(Client, client_id)

    async def get_by_name(self, name: str) -> Client | None:
        result = await self.session.execute(select(Client).where(Client.name == name))
        return result.scalar_one_or_none()

    async def get_by_dr_login(self, login: str) -> Client | None:
        result = await self.session.execute(select(Client).where(Client.dr_login == login))
        return result.scalar_one_or_none()

    async def list(self) -> Sequence[Client]:
        result = await self.session.execute(select(Client).order_by(Client.id))
        return result.scalars().all()

    async def balances(self, client_ids: Iterable[int]) -> dict[int, Decimal]:
        result = await self.session.execute(
            _balances(dialect_of(self.session)), one_of_values("client_ids", client_ids)
        )
        return {client_id: balance for client_id, balance in result.tuples()}

    async def debit_if_covered(self, client_id: int, amount: Decimal) -> bool:
        """Take `amount` off the balance only if it covers it, atomically in SQL."""
        result = await self.session.execute(
            _debit_if_covered(), {"client_id": client_id, "amount": amount}
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def credit(self, client_id: int, amount: Decimal) -> None:
        await self.session.execute(
            update(Client)
            .where(Client.id == client_id)
            .values(balance=Client.balance + amount)
            .execution_options(synchronize_session=False)
        )


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def find_active(self, key_hash: str) -> tuple[ApiKey, Client] | None:
        result = await self.session.execute(
            select(ApiKey, Client)
            .join(Client, Client.id == ApiKey.client_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        row = result.first()
        return None if row is None else (row[0], row[1])

    async def list_for(self, client_id: int) -> Sequence[ApiKey]:
        result = await self.session.execute(
            select(ApiKey).where(ApiKey.client_id == client_id).order_by(ApiKey.id)
        )
        return result.scalars().all()

    async def revoke(self, key_id: int, at: datetime) -> bool:
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_all(self, client_id: int, at: datetime) -> int:
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.client_id == client_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
