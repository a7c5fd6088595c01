"""The gateway keeps PostgreSQL's statistics of its own tables current (ANALYZE).

Every hot query has an index plan without statistics (docs/architecture.md, "PostgreSQL
without statistics"). What statistics cannot be done without is invalidating cached plans:
asyncpg prepares each statement once per connection and, after five executions, PostgreSQL
keeps a generic plan for it, made for the table as it was then. A gateway started on a new
database makes those plans while the tables are empty, and for an empty table a sequential
scan is the cheapest plan of all; the plan then stays while the table grows to millions of
rows, until something invalidates it — an ANALYZE, which never comes when autovacuum is off
(the CI cluster) or lags behind a bulk load (production). So the sweeper runs this: each
table of ours that has doubled in rows since its last ANALYZE (or has never been analyzed
and holds a thousand rows) is analyzed. That is about ten ANALYZEs while a table grows to a
million rows, each reading a sample of at most 30,000 rows, and every plan cached before one
is made again for the table as it is.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import String

# The tables that grow with traffic; configuration tables (clients, routes, …) stay small.
GROWING_TABLES = (
    "messages",
    "message_events",
    "message_parts",
    "receipts",
    "webhook_deliveries",
    "webhook_attempts",
    "smpp_receipts",
    "smpp_receipt_requests",
    "hlr_lookups",
    "ledger_entries",
    "tasks",
    "viber_messages",
)
# A partition (messages_w20261207, …) is analyzed on its own, like a table of the list: each
# week's starts empty and grows (db/partitions.py).
# Below this many rows any plan is fast: no ANALYZE for tables that small.
MIN_ROWS = 1_000
GROWTH = 2.0  # analyze again once a table holds this many times the rows of the last ANALYZE

_GROWN = text(
    """
    SELECT s.relname
    FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
    LEFT JOIN pg_inherits AS i ON i.inhrelid = s.relid
    LEFT JOIN pg_class AS parent ON parent.oid = i.inhparent
    WHERE s.schemaname = current_schema()
      AND (s.relname = ANY(:tables) OR parent.relname = ANY(:tables))
      AND s.n_live_tup >= :min_rows
      AND (c.reltuples < 0 OR s.n_live_tup > :growth * c.reltuples)
    ORDER BY s.relname
    """
).bindparams(bindparam("tables", type_=ARRAY(String())))


async def grown_tables(
    session: AsyncSession, tables: Collection[str] = GROWING_TABLES
) -> list[str]:
    """Our tables whose row count has outgrown their statistics (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    result = await session.execute(
        _GROWN, {"tables": list(tables), "min_rows": MIN_ROWS, "growth": GROWTH}
    )
    return [row[0] for row in result]


async def analyze_grown_tables(
    session: AsyncSession, tables: Collection[str] = GROWING_TABLES
) -> list[str]:
    """ANALYZE the tables that outgrew their statistics; the ones analyzed.

    SKIP_LOCKED: a table another worker is analyzing right now is left to it. Nothing to do
    on SQLite, which has no plan cache across connections and no statistics unless asked.
    """
    grown = await grown_tables(session, tables)
    if grown:
        names = ", ".join(f'"{name}"' for name in grown)  # ours, from the fixed list above
        await session.execute(text(f"ANALYZE (SKIP_LOCKED) {names}"))
    return grown
