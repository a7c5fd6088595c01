"""`tidings optout …`: a client's opt-out list, by hand or from a CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.service import require_client
from tidings.cli.common import JSON_OPTION, clock, emit, fail, run_in_transaction
from tidings.optouts.service import (
    CLI,
    MAX_PAGE,
    ListChange,
    add_numbers,
    count_numbers,
    import_numbers,
    list_numbers,
    remove_numbers,
)

optout_app = typer.Typer(
    help="Numbers that asked a client to stop: nothing of that client goes to them.",
    no_args_is_help=True,
)


def _change(client_id: int, change: ListChange, verb: str) -> dict[str, Any]:
    return {
        "client_id": client_id,
        verb: len(change.changed),
        "unchanged": len(change.msisdns) - len(change.changed),
        "msisdns": change.changed,
    }


@optout_app.command("add")
def optout_add(client_id: int, msisdns: list[str], as_json: bool = JSON_OPTION) -> None:
    """Put numbers on the client's list (already listed ones stay as they are)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await require_client(session, client_id)
        change = await add_numbers(session, client_id, msisdns, source=CLI, now=clock.now())
        return _change(client_id, change, "added")

    emit(run_in_transaction(work), as_json)


@optout_app.command("remove")
def optout_remove(client_id: int, msisdns: list[str], as_json: bool = JSON_OPTION) -> None:
    """Take numbers off the client's list."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await require_client(session, client_id)
        return _change(client_id, await remove_numbers(session, client_id, msisdns), "removed")

    emit(run_in_transaction(work), as_json)


@optout_app.command("list")
def optout_list(
    client_id: int,
    after: str | None = typer.Option(None, "--after", help="Start after this msisdn."),
    limit: int = typer.Option(1000, "--limit", min=1, max=MAX_PAGE),
    as_json: bool = JSON_OPTION,
) -> None:
    """The client's list in msisdn order, a page at a time."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        await require_client(session, client_id)
        return [
            {"msisdn": o.msisdn, "source": o.source, "created_at": o.created_at}
            for o in await list_numbers(session, client_id, after=after, limit=limit)
        ]

    emit(run_in_transaction(work), as_json, title=f"Opt-outs of client {client_id}")


@optout_app.command("count")
def optout_count(client_id: int, as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> dict[str, Any]:
        await require_client(session, client_id)
        return {"client_id": client_id, "optouts": await count_numbers(session, client_id)}

    emit(run_in_transaction(work), as_json)


@optout_app.command("import")
def optout_import(client_id: int, file: Path, as_json: bool = JSON_OPTION) -> None:
    """Add the numbers of a CSV file: its `msisdn` column, or the first column when no header
    names one. All or nothing: a bad number fails the file, with its line."""
    try:
        text = file.read_text("utf-8-sig")
    except OSError as error:
        fail(str(error))

    async def work(session: AsyncSession) -> dict[str, Any]:
        await require_client(session, client_id)
        change = await import_numbers(session, client_id, text, now=clock.now())
        return {
            "client_id": client_id,
            "imported": len(change.msisdns),
            "added": len(change.changed),
        }

    emit(run_in_transaction(work), as_json)
