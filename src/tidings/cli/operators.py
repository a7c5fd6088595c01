"""`tidings operators`: the accounts that may open the web console."""

from __future__ import annotations

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.cli.common import JSON_OPTION, clock, emit, run_in_transaction
from tidings.operators.service import (
    create_operator,
    delete_operator,
    list_operators,
    set_operator_password,
)

operators_app = typer.Typer(
    help="Operators: who may sign in to the web console at /console.", no_args_is_help=True
)

PASSWORD_OPTION = typer.Option(
    None, "--password", help="The password (at least 10 characters); generated when omitted."
)


@operators_app.command("create")
def operators_create(
    name: str = typer.Option(..., "--name"),
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an operator; prints the password once (only its scrypt hash is stored)."""

    async def work(session: AsyncSession) -> dict[str, object]:
        created = await create_operator(session, clock, name=name, password=password)
        return {
            "id": created.operator.id,
            "name": created.operator.name,
            "password": created.password,
        }

    emit(run_in_transaction(work), as_json)


@operators_app.command("list")
def operators_list(as_json: bool = JSON_OPTION) -> None:
    """List operators (never their passwords)."""

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return [
            {
                "id": operator.id,
                "name": operator.name,
                "created_at": operator.created_at,
                "last_login_at": operator.last_login_at,
            }
            for operator in await list_operators(session)
        ]

    emit(run_in_transaction(work), as_json, title="operators")


@operators_app.command("delete")
def operators_delete(name: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Delete an operator; their open console sessions end with their next request."""

    async def work(session: AsyncSession) -> dict[str, object]:
        await delete_operator(session, name)
        return {"deleted": name}

    emit(run_in_transaction(work), as_json)


@operators_app.command("set-password")
def operators_set_password(
    name: str = typer.Argument(...),
    password: str | None = PASSWORD_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Give an operator a new password (generated when omitted); prints it once."""

    async def work(session: AsyncSession) -> dict[str, object]:
        return {"name": name, "password": await set_operator_password(session, name, password)}

    emit(run_in_transaction(work), as_json)
