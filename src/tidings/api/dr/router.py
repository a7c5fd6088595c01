"""`/{client_id}/api/dr/...`: a message's delivery report by our id or the client's extra_id.

Parse, authenticate the client, look the message up through the message service, render.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.service import authenticate_dr
from tidings.api.dr.render import (
    Channels,
    Fallback,
    advanced_report,
    advanced_viber_report,
    simple_report,
    simple_viber_report,
)
from tidings.api.dr.statuses import VIBER_CHANNEL
from tidings.api.dr.wire import DrRoute, Forbidden, basic_credentials, json_response
from tidings.api.limits import limit_client
from tidings.api.openapi import routes as doc
from tidings.api.state import app_state
from tidings.db.ids import parse_id
from tidings.db.replica import read_with_fallback
from tidings.errors import NotFound
from tidings.messages.models import Message
from tidings.messages.queries import get_message, get_message_by_reference, history
from tidings.viber.queries import get_viber

router = APIRouter(route_class=DrRoute, tags=["Delivery reports (seed 000)"])

Renderer = Callable[[Message, datetime], dict[str, Any]]
Lookup = Callable[[AsyncSession, int], Awaitable[Message]]
_REPORTS: dict[str, Renderer] = {"simple": simple_report, "advanced": advanced_report}
_VIBER_REPORTS: dict[str, Callable[[Message, datetime, Channels], dict[str, Any]]] = {
    "simple": simple_viber_report,
    "advanced": advanced_viber_report,
}


async def _answer(request: Request, client_id: str, kind: str, lookup: Lookup) -> Response:
    login, password = basic_credentials(request)
    state = app_state(request)
    # Read-only: the replica serves it when there is one (db/replica.py).
    async with state.reads() as session:
        client = await authenticate_dr(session, login, password)
    limit_client(request, client.id)
    if client_id != str(client.id):
        raise Forbidden(f"these credentials are not client {client_id}'s")

    async def report(session: AsyncSession) -> Response:
        message = await lookup(session, client.id)
        changes = await history(session, message)
        if message.channel == VIBER_CHANNEL:
            channels = await _viber_channels(session, message)
            return json_response(_VIBER_REPORTS[kind](message, changes[-1][1], channels))
        return json_response(_REPORTS[kind](message, changes[-1][1]))

    return await read_with_fallback(state.reads, state.sessions, report)


async def _viber_channels(session: AsyncSession, message: Message) -> Channels:
    view = await get_viber(session, message.client_id, message.id)
    content = view.content
    viber_ttl = int((message.expires_at - (message.send_at or message.time_in)).total_seconds())
    fallback = None
    if view.fallback is not None:
        fallback = Fallback(view.fallback, (await history(session, view.fallback))[-1][1])
    return Channels(
        viber_ttl=content.ttl_seconds if content else viber_ttl,
        sms_ttl=content.sms_validity_seconds if content and content.sms_text else None,
        fallback=fallback,
    )


def _by_id(message_id: str) -> Lookup:
    async def find(session: AsyncSession, client_id: int) -> Message:
        number = parse_id(message_id)
        if number is None:
            raise NotFound(f"no message {message_id}", reason="message_not_found")
        return await get_message(session, client_id, number)

    return find


def _by_extra_id(extra_id: str) -> Lookup:
    async def find(session: AsyncSession, client_id: int) -> Message:
        if "\x00" in extra_id:  # no stored reference has NUL (PostgreSQL text can't hold it)
            raise NotFound(f"no message {extra_id!r}", reason="message_not_found")
        return await get_message_by_reference(session, client_id, extra_id)

    return find


@router.get("/{client_id}/api/dr/external/{extra_id:path}/simple", **doc.DR_SIMPLE)
async def simple_by_extra_id(request: Request, client_id: str, extra_id: str) -> Response:
    return await _answer(request, client_id, "simple", _by_extra_id(extra_id))


@router.get("/{client_id}/api/dr/external/{extra_id:path}/advanced", **doc.DR_ADVANCED)
async def advanced_by_extra_id(request: Request, client_id: str, extra_id: str) -> Response:
    return await _answer(request, client_id, "advanced", _by_extra_id(extra_id))


@router.get("/{client_id}/api/dr/{message_id}/simple", **doc.DR_SIMPLE)
async def simple_by_id(request: Request, client_id: str, message_id: str) -> Response:
    return await _answer(request, client_id, "simple", _by_id(message_id))


@router.get("/{client_id}/api/dr/{message_id}/advanced", **doc.DR_ADVANCED)
async def advanced_by_id(request: Request, client_id: str, message_id: str) -> Response:
    return await _answer(request, client_id, "advanced", _by_id(message_id))
