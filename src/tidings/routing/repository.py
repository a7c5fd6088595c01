from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.routing.models import Route, Supplier


class SupplierRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, supplier: Supplier) -> Supplier:
        self.session.add(supplier)
        await self.session.flush()
        return supplier

    async def get(self, supplier_id: int) -> Supplier | None:
        return await self.session.get(Supplier, supplier_id)

    async def get_by_name(self, name: str) -> Supplier | None:
        result = await self.session.execute(select(Supplier).where(Supplier.name == name))
        return result.scalar_one_or_none()

    async def get_by_dlr_login(self, login: str) -> Supplier | None:
        result = await self.session.execute(select(Supplier).where(Supplier.dlr_login == login))
        return result.scalar_one_or_none()

    async def list(self, *, enabled_only: bool = False) -> Sequence[Supplier]:
        query = select(Supplier).order_by(Supplier.id)
        if enabled_only:
            query = query.where(Supplier.enabled.is_(True))
        result = await self.session.execute(query)
        return result.scalars().all()


class RouteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, route: Route) -> Route:
        self.session.add(route)
        await self.session.flush()
        return route

    async def list(self) -> Sequence[Route]:
        result = await self.session.execute(select(Route).order_by(Route.id))
        return result.scalars().all()

    async def active(self, type_: str) -> Sequence[Route]:
        result = await self.session.execute(
            select(Route)
            .join(Supplier, Supplier.id == Route.supplier_id)
            .where(Route.type == type_, Supplier.enabled.is_(True))
        )
        return result.scalars().all()

    async def active_all(self) -> Sequence[Route]:
        """The routes of every type whose supplier is enabled (one query for the catalog)."""
        result = await self.session.execute(
            select(Route)
            .join(Supplier, Supplier.id == Route.supplier_id)
            .where(Supplier.enabled.is_(True))
        )
        return result.scalars().all()

    async def delete(self, route_id: int) -> bool:
        route = await self.session.get(Route, route_id)
        if route is None:
            return False
        await self.session.delete(route)
        return True
