"""Statements built once per dialect (tidings.db.prebuilt) select what `arrays.one_of` does."""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import accept_messages, build_world
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.db.prebuilt import dialect_of, one_of_param, one_of_values
from tidings.messages.models import Message
from tidings.webhooks.models import WebhookDelivery

MESSAGES = cast(Table, Message.__table__)
DELIVERIES = cast(Table, WebhookDelivery.__table__)


@cache
def _messages_by_id(dialect: str) -> Select[Any]:
    return select(MESSAGES.c.id).where(one_of_param(dialect, MESSAGES.c.id, "ids"))


@cache
def _deliveries_by_id(dialect: str) -> Select[Any]:
    return select(DELIVERIES.c.id).where(one_of_param(dialect, DELIVERIES.c.id, "ids"))


async def test_one_of_a_partition_key_and_of_a_plain_column(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    ids = await accept_messages(sessions, clock, world, 3)
    async with transaction(sessions) as session:
        statement = _messages_by_id(dialect_of(session))
        assert statement is _messages_by_id(dialect_of(session))  # built once
        for wanted in ([ids[0]], ids[1:], ids, [ids[0], 1], []):
            rows = await session.execute(statement, one_of_values("ids", wanted))
            assert sorted(row[0] for row in rows) == sorted(set(wanted) & set(ids))
        # A table that is not partitioned gets no range parameters, and ignores them.
        deliveries = _deliveries_by_id(dialect_of(session))
        rows = await session.execute(deliveries, one_of_values("ids", [1]))
        assert list(rows) == []
