"""Looking Viber messages up for the APIs (reads only)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.errors import NotFound
from tidings.messages.models import Message
from tidings.messages.repository import MessageRepository
from tidings.viber.models import ViberContent
from tidings.viber.repository import VIBER, ViberRepository


@dataclass(frozen=True, slots=True)
class ViberView:
    message: Message
    content: ViberContent | None
    fallback: Message | None  # the SMS alternative, once it was created


async def _view(session: AsyncSession, message: Message | None, what: str) -> ViberView:
    if message is None or message.channel != VIBER:
        raise NotFound(f"no Viber message {what}", reason="message_not_found")
    viber = ViberRepository(session)
    return ViberView(message, await viber.content(message.id), await viber.fallback_of(message.id))


async def get_viber(session: AsyncSession, client_id: int, message_id: int) -> ViberView:
    message = await MessageRepository(session).get(client_id, message_id)
    return await _view(session, message, str(message_id))


async def get_viber_by_reference(
    session: AsyncSession, client_id: int, reference: str
) -> ViberView:
    message = await MessageRepository(session).get_by_reference(client_id, reference)
    return await _view(session, message, f"with reference {reference!r}")


async def fallback_of(session: AsyncSession, message: Message) -> Message | None:
    """The SMS sent for a Viber message, if any (None for every other message)."""
    if message.channel != VIBER:
        return None
    return await ViberRepository(session).fallback_of(message.id)
