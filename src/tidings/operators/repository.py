"""SQL for operator accounts and console secrets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.upsert import insert_for
from tidings.operators.models import ConsoleSecret, Operator


class OperatorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, name: str, password_hash: str, created_at: datetime) -> Operator:
        operator = Operator(name=name, password_hash=password_hash, created_at=created_at)
        self.session.add(operator)
        await self.session.flush()
        return operator

    async def by_name(self, name: str) -> Operator | None:
        result = await self.session.execute(select(Operator).where(Operator.name == name))
        return result.scalar_one_or_none()

    async def by_id(self, operator_id: int) -> Operator | None:
        return await self.session.get(Operator, operator_id)

    async def all(self) -> Sequence[Operator]:
        result = await self.session.execute(select(Operator).order_by(Operator.id))
        return result.scalars().all()

    async def count(self) -> int:
        result = await self.session.execute(select(func.count()).select_from(Operator))
        return int(result.scalar_one())

    async def delete(self, name: str) -> bool:
        result = await self.session.execute(delete(Operator).where(Operator.name == name))
        return bool(getattr(result, "rowcount", 0))

    async def set_password(self, name: str, password_hash: str) -> bool:
        result = await self.session.execute(
            update(Operator).where(Operator.name == name).values(password_hash=password_hash)
        )
        return bool(getattr(result, "rowcount", 0))

    async def record_login(self, operator_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Operator).where(Operator.id == operator_id).values(last_login_at=at)
        )


class ConsoleSecretRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_create(self, name: str, candidate: str, at: datetime) -> str:
        """The stored secret `name`; `candidate` becomes it if there is none yet.

        Insert-if-absent, then read: two processes starting at once agree on one secret.
        """
        insert = insert_for(self.session)
        await self.session.execute(
            insert(ConsoleSecret)
            .values(name=name, value=candidate, created_at=at)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        result = await self.session.execute(
            select(ConsoleSecret.value).where(ConsoleSecret.name == name)
        )
        return str(result.scalar_one())

    async def get(self, name: str) -> str | None:
        result = await self.session.execute(
            select(ConsoleSecret.value).where(ConsoleSecret.name == name)
        )
        value = result.scalar_one_or_none()
        return None if value is None else str(value)

    async def put(self, name: str, value: str, at: datetime) -> None:
        """Store `value` as `name`, replacing what was there."""
        insert = insert_for(self.session)
        statement = insert(ConsoleSecret).values(name=name, value=value, created_at=at)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "value": statement.excluded.value,
                    "created_at": statement.excluded.created_at,
                },
            )
        )
