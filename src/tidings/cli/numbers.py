"""`tidings numbers`: the virtual numbers and short codes clients own, and the inbound
messages sent to them (docs/inbound.md)."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.service import require_client
from tidings.cli.common import JSON_OPTION, clock, emit, run_in_transaction
from tidings.inbound.models import InboundMessage, Number
from tidings.inbound.repository import InboundRepository, NumberRepository
from tidings.inbound.service import UNROUTED, assign_number, release_number
from tidings.routing.service import find_supplier

numbers_app = typer.Typer(
    help="Numbers and short codes clients own; inbound messages (MO) sent to them.",
    no_args_is_help=True,
)

KEYWORD_OPTION = typer.Option(
    None, "--keyword", help="Only messages starting with this word (a shared short code)."
)


def number_view(number: Number) -> dict[str, Any]:
    return {
        "id": number.id,
        "client_id": number.client_id,
        "number": number.number,
        "keyword": number.keyword or None,
        "supplier_id": number.supplier_id,
        "created_at": number.created_at,
    }


def inbound_view(message: InboundMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "client_id": message.client_id if message.client_id is not None else UNROUTED,
        "supplier_id": message.supplier_id,
        "sender": message.sender,
        "recipient": message.recipient,
        "keyword": message.keyword,
        "text": message.text,
        "received_at": message.received_at,
    }


@numbers_app.command("assign")
def numbers_assign(
    client_id: int,
    number: str,
    keyword: str | None = KEYWORD_OPTION,
    supplier: str | None = typer.Option(
        None, "--supplier", help="Only inbound messages from this supplier (name or id)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Give a client a number (or one keyword on a shared short code)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await require_client(session, client_id)
        supplier_id = (await find_supplier(session, supplier)).id if supplier else None
        assigned = await assign_number(
            session, clock, client_id, number, keyword=keyword, supplier_id=supplier_id
        )
        return number_view(assigned)

    emit(run_in_transaction(work), as_json)


@numbers_app.command("list")
def numbers_list(
    client_id: int | None = typer.Option(None, "--client", help="Only this client's."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List assigned numbers."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [number_view(n) for n in await NumberRepository(session).list(client_id)]

    emit(run_in_transaction(work), as_json, title="numbers")


@numbers_app.command("release")
def numbers_release(
    number: str, keyword: str | None = KEYWORD_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Take a number (or one keyword of it) back; later messages to it are unrouted."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        return {**number_view(await release_number(session, number, keyword)), "released": True}

    emit(run_in_transaction(work), as_json)


@numbers_app.command("inbound")
def numbers_inbound(
    unrouted: bool = typer.Option(False, "--unrouted", help="Only those no number matched."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = JSON_OPTION,
) -> None:
    """The latest inbound messages, newest first (client 'unrouted': no number matched)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        latest = await InboundRepository(session).latest(limit, unrouted_only=unrouted)
        return [inbound_view(m) for m in latest]

    emit(run_in_transaction(work), as_json, title="inbound messages")
