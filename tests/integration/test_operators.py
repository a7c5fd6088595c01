"""Operator accounts through the `tidings operators` commands and the service, on SQLite
and PostgreSQL; the console's stored secret."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tidings.cli.main import app
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.errors import Conflict, NotFound
from tidings.operators.models import Operator
from tidings.operators.service import (
    create_operator,
    delete_operator,
    session_secret,
    verify_password,
)


def _cli(database_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"TIDINGS_DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_operators_commands(database_url: str) -> None:
    code, out = _cli(database_url, "operators", "create", "--name", "olga", "--json")
    assert code == 0, out
    created = json.loads(out)
    assert created["name"] == "olga"
    assert len(created["password"]) >= 16
    code, out = _cli(
        database_url, "operators", "create", "--name", "ivan", "--password", "a long secret"
    )
    assert code == 0, out
    code, out = _cli(database_url, "operators", "create", "--name", "olga", "--json")
    assert code == 1
    assert "already exists" in out
    code, out = _cli(database_url, "operators", "create", "--name", "x", "--password", "short")
    assert code == 1
    assert "at least 10 characters" in out
    code, out = _cli(database_url, "operators", "list", "--json")
    listed = json.loads(out)
    assert [o["name"] for o in listed] == ["olga", "ivan"]
    assert all("password" not in o and "password_hash" not in o for o in listed)
    code, out = _cli(database_url, "operators", "set-password", "ivan", "--json")
    assert code == 0
    assert json.loads(out)["password"] != "a long secret"
    code, out = _cli(database_url, "operators", "delete", "ivan", "--json")
    assert json.loads(out) == {"deleted": "ivan"}
    code, out = _cli(database_url, "operators", "delete", "ivan")
    assert code == 1
    assert "no operator" in out


async def test_only_a_hash_is_stored(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with transaction(sessions) as session:
        created = await create_operator(session, clock, name="olga")
    async with sessions() as session:
        stored = (await session.execute(select(Operator))).scalar_one()
    assert created.password not in stored.password_hash
    assert verify_password(created.password, stored.password_hash)
    assert stored.created_at == clock.now()
    async with transaction(sessions) as session:
        with pytest.raises(Conflict):
            await create_operator(session, clock, name="olga", password="0123456789")
    async with transaction(sessions) as session:
        await delete_operator(session, "olga")
    async with transaction(sessions) as session:
        with pytest.raises(NotFound):
            await delete_operator(session, "olga")


async def test_the_session_secret_is_generated_once(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with transaction(sessions) as session:
        first = await session_secret(session, clock)
    async with transaction(sessions) as session:
        second = await session_secret(session, clock)
    assert first == second
    assert len(first) >= 48


def test_a_webhook_format_brings_its_providers_retry_schedule(database_url: str) -> None:
    code, out = _cli(database_url, "clients", "create", "--name", "fmt", "--json")
    assert code == 0, out
    client = str(json.loads(out)["id"])

    def update(*args: str) -> str:
        code, out = _cli(database_url, "clients", "update", client, *args, "--json")
        assert code == 0, out
        return str(json.loads(out)["retry_schedule"])

    assert update("--webhook-format", "ip1") == "ip1"  # seed 003: every 10 min, 10 tries
    assert update("--webhook-format", "hyber") == "ketchup"
    assert update("--webhook-format", "ip1", "--retry-schedule", "30,300") == "30,300"
    assert update("--webhook-format", "ketchup") == "30,300"  # the operator's choice stays
