"""Registered Viber senders: the alpha names a client may send from (error 45 otherwise)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.clock import Clock
from tidings.errors import InvalidRequest, NotFound
from tidings.viber.models import ViberSender
from tidings.viber.repository import SenderRepository

MAX_ALPHA_NAME = 32


def check_alpha_name(alpha_name: str) -> str:
    name = alpha_name.strip()
    if not name or len(name) > MAX_ALPHA_NAME or not name.isprintable():
        raise InvalidRequest(
            f"an alpha name is 1 to {MAX_ALPHA_NAME} printable characters",
            reason="bad_alpha_name",
        )
    return name


async def register_sender(
    session: AsyncSession, clock: Clock, client_id: int, alpha_name: str
) -> ViberSender:
    """Let a client send Viber messages from `alpha_name` (idempotent)."""
    name = check_alpha_name(alpha_name)
    if await ClientRepository(session).get(client_id) is None:
        raise NotFound(f"no client {client_id}")
    senders = SenderRepository(session)
    existing = await senders.get(client_id, name)
    if existing is not None:
        return existing
    return await senders.add(
        ViberSender(client_id=client_id, alpha_name=name, created_at=clock.now())
    )


async def unregister_sender(session: AsyncSession, client_id: int, alpha_name: str) -> None:
    if not await SenderRepository(session).remove(client_id, alpha_name):
        raise NotFound(f"client {client_id} has no Viber sender {alpha_name!r}")


async def list_senders(session: AsyncSession, client_id: int) -> Sequence[ViberSender]:
    return await SenderRepository(session).list(client_id)
