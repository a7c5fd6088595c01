"""Hot queries keep index plans on PostgreSQL tables that were never analyzed (issue 13).

The CI cluster runs with ``autovacuum = off`` and production clusters lag behind bulk loads,
so the planner often has no statistics at all: it estimates from the table's size on disk and
fixed default selectivities. This test builds that situation on purpose — a database of its
own, migrated, autovacuum off on every table, never analyzed, the hot tables filled with
``TIDINGS_PLAN_ROWS`` messages (see ROWS) and their receipts, parts, events, webhook
deliveries, SMPP receipts and HLR lookups, mostly finished, a few pending, plus a backlog of
queued messages — and then EXPLAINs every hot statement exactly as the gateway sends it: each
repository function is called once in a rolled-back transaction, its SQL and parameters are
captured at the cursor, and each statement is PREPAREd and EXPLAINed:

* ``custom``: the plan for these parameter values (``plan_cache_mode = force_custom_plan``);
* ``generic``: the plan for any values (``force_generic_plan``), which asyncpg's prepared
  statements get from PostgreSQL after five executions;
* ``cached while empty``: the generic plan PREPAREd while the tables were still empty, as a
  gateway started on a new database caches it, shown for comparison only: for an empty table
  a sequential scan is the cheapest plan of all, and no query shape changes that. That plan
  stays until something invalidates it (the 1–2 s look-ups of an earlier closing note);
* ``cached while empty, after the sweeper's ANALYZE``: the same prepared statement once the
  gateway's own remedy ran (``tidings.db.statistics``, from the sweeper): it analyzes the
  tables that outgrew their statistics, and the cached plan is made again.

A plan fails when it reads a big table sequentially, or (generic plans) when its estimated
cost says it would read a large part of one. The failure message shows every plan's shape.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import POSTGRES_SERVER, _postgres_reachable
from tests.support import build_world
from tidings.clock import FrozenClock
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.migrate import upgrade
from tidings.db.partitions import PARTITION_KEYS, create_range
from tidings.db.statistics import MIN_ROWS, analyze_grown_tables
from tidings.delivery.repository import DispatchRepository, PartRepository, ReceiptRepository
from tidings.delivery.service import sweep_expired
from tidings.hlr.repository import HlrRepository
from tidings.messages.admission_repository import AdmissionRepository
from tidings.messages.models import Message
from tidings.messages.repository import MessageRepository
from tidings.messages.status import IN_FLIGHT_STATUSES, PENDING_STATUSES
from tidings.optouts.repository import OptOutRepository
from tidings.smpp_server import store as smpp_store
from tidings.webhooks.repository import Outcome, WebhookRepository

pytestmark = pytest.mark.postgres

# The figure is 1,000,000 messages; filling that many (with their receipts, events
# and webhooks, every index in place) took over 10 minutes on the shared 2-core machine, so
# the default is 200,000: the plans' shapes are the same from ~100k rows on, since without
# statistics the planner scales its estimates with the table's size on disk. Set
# TIDINGS_PLAN_ROWS=1000000 to check at the size.
ROWS = int(os.environ.get("TIDINGS_PLAN_ROWS", "200000"))
PENDING = 1_000  # webhooks pending, receipts unmatched, SMPP receipts unsent, HLR due, ...
# Messages queued, each with its dispatch job: a bulk send's backlog, the claim's worst case.
BACKLOG = ROWS // 2
# Look-ups of many values at once: the gateway's batches go up to 1,000 (a report round, a
# bulk request's references) against tables of millions: the 1,000 per 1,000,000
# rows, scaled with ROWS so that the share of the table the planner weighs stays the same.
LOOKUPS = max(100, ROWS // 1000)
# The tables filled below, each with ROWS / 4 rows or more: reading one of them whole is a
# fault. The others (clients, suppliers, routes, …) are configuration and stay small.
BIG_TABLES = {
    "messages",
    "message_events",
    "message_parts",
    "receipts",
    "webhook_deliveries",
    "smpp_receipts",
    "hlr_lookups",
    "optouts",
}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The filled ids (1 to ROWS) are older than the time-ordered ones: as in a database migrated
# from before them, they are in partitions of their own (db/partitions.py), this many.
OLD_PARTITIONS = 4
_PARTITION = re.compile(r"_(default|[wl]\d{8})$")
_EMPTY = re.compile(r"_(default|w\d{8})$")


def _table_of(relation: str) -> str:
    """The table a relation is a partition of (itself if none)."""
    return _PARTITION.sub("", relation)


def _is_big(relation: str) -> bool:
    """A relation the fill made big: a big table, or one of its old partitions (the filled
    ids are all old: this week's partitions and the DEFAULT one stay empty)."""
    return _table_of(relation) in BIG_TABLES and not _EMPTY.search(relation)


# A plan estimated to cost more than this reads far more of a table than a look-up of
# ~1,000 rows by index needs (those cost about 5,000 units); a sequential scan of 200,000
# messages costs ~6,000 and a sort of them far more, of a million ~30,000.
COST_BOUND = 10_000.0

CLIENT = 1
SUPPLIER = 1


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: tuple[Any, ...]


@dataclass
class Hot:
    """One hot repository call and the statements it sent."""

    name: str
    call: Callable[[AsyncSession], Awaitable[object]]
    statements: list[Statement]


def _ids(start: int, count: int) -> list[int]:
    return list(range(start, start + count))


def _hot_calls() -> list[tuple[str, Callable[[AsyncSession], Awaitable[object]]]]:
    """Every hot look-up, with arguments shaped as the gateway's own (batches of 100–1,000)."""
    lease = NOW + timedelta(seconds=60)
    since = NOW - timedelta(days=3)
    first_pending = ROWS - BACKLOG + 1
    pending_ids = _ids(first_pending, 100)
    delivered_ids = _ids(ROWS // 2, LOOKUPS)
    smids = [f"sm-{i}" for i in delivered_ids]
    refs = [f"ref-{i}" for i in delivered_ids]
    part_ids = [f"pt-{i}" for i in _ids(1, LOOKUPS)]
    optout_numbers = [f"38050{i:07d}" for i in delivered_ids]
    outcome = Outcome(
        delivery_id=ROWS,
        lease=lease,
        attempt=None,
        state="delivered",
        attempts=1,
        next_attempt_at=NOW,
        finished_at=NOW,
        last_error=None,
    )
    return [
        # The dispatch lane.
        ("dispatch.claim", lambda s: DispatchRepository(s).claim(SUPPLIER, NOW, lease, 100)),
        ("dispatch.complete", lambda s: DispatchRepository(s).complete(pending_ids)),
        ("dispatch.complete", lambda s: DispatchRepository(s).complete(pending_ids)),
        ("dispatch.remove_unleased", lambda s: DispatchRepository(s).remove_unleased(ROWS, NOW)),
        (
            "dispatch.retry_later",
            lambda s: DispatchRepository(s).retry_later([(ROWS, NOW, "busy")]),
        ),
        ("messages.lock_for_update", lambda s: MessageRepository(s).lock_for_update(delivered_ids)),
        (
            "messages.update_columns",
            lambda s: MessageRepository(s).update_columns({ROWS: {"status": "sent"}}),
        ),
        # A batch of answers or receipts: one UPDATE … FROM unnest(…) on PostgreSQL.
        (
            "messages.update_columns(batch)",
            lambda s: MessageRepository(s).update_columns(
                {id_: {"status": "delivered", "time_dr": NOW} for id_ in delivered_ids}
            ),
        ),
        # The webhook sender.
        ("webhooks.candidates", lambda s: WebhookRepository(s).candidates(NOW, 100, [])),
        (
            "webhooks.candidates(excluding)",
            lambda s: WebhookRepository(s).candidates(NOW, 100, [CLIENT + 1]),
        ),
        ("webhooks.lease", lambda s: WebhookRepository(s).lease(pending_ids, NOW, lease)),
        ("webhooks.claim", lambda s: WebhookRepository(s).claim(NOW, 100, lease)),
        ("webhooks.record", lambda s: WebhookRepository(s).record([outcome])),
        # Receipt matching.
        (
            "receipts.reported",
            lambda s: ReceiptRepository(s).reported(SUPPLIER, smids + part_ids),
        ),
        ("receipts.newly_matchable", lambda s: ReceiptRepository(s).newly_matchable(since, 1000)),
        (
            "receipts.newly_matchable(ids)",
            lambda s: ReceiptRepository(s).newly_matchable(since, None, ids=delivered_ids),
        ),
        (
            "receipts.newly_matchable(message_ids)",
            lambda s: ReceiptRepository(s).newly_matchable(since, None, message_ids=pending_ids),
        ),
        ("parts.unmatched_receipts", lambda s: PartRepository(s).unmatched_receipts(since, 1000)),
        (
            "parts.unmatched_receipts(ids)",
            lambda s: PartRepository(s).unmatched_receipts(since, None, ids=delivered_ids),
        ),
        (
            "parts.unmatched_receipts(message_ids)",
            lambda s: PartRepository(s).unmatched_receipts(since, None, message_ids=pending_ids),
        ),
        ("parts.find", lambda s: PartRepository(s).find(SUPPLIER, part_ids)),
        ("parts.statuses", lambda s: PartRepository(s).statuses(pending_ids)),
        # The sweeper.
        (
            "messages.expiring_unleased",
            lambda s: MessageRepository(s).expiring_unleased(PENDING_STATUSES, NOW, 1000),
        ),
        (
            "messages.expiring",
            lambda s: MessageRepository(s).expiring(IN_FLIGHT_STATUSES, NOW, 1000),
        ),
        # The SMPP server's receipt queue.
        (
            "smpp.pending_receipts",
            lambda s: smpp_store.pending_receipts(s, [CLIENT], [], 100),
        ),
        (
            "smpp.pending_receipts(excluding)",
            lambda s: smpp_store.pending_receipts(s, [CLIENT], _ids(1, 10), 100),
        ),
        ("smpp.mark_sent", lambda s: smpp_store.mark_sent(s, _ids(1, 100), NOW)),
        # HLR.
        ("hlr.claim", lambda s: HlrRepository(s).claim([SUPPLIER], NOW, lease, 100)),
        ("hlr.references_taken", lambda s: HlrRepository(s).references_taken(CLIENT, refs)),
        # Status reads and acceptance.
        ("messages.get", lambda s: MessageRepository(s).get(CLIENT, ROWS // 2)),
        (
            "messages.get_by_reference",
            lambda s: MessageRepository(s).get_by_reference(CLIENT, f"ref-{ROWS // 2}"),
        ),
        (
            "messages.references_in_use",
            lambda s: MessageRepository(s).references_in_use(CLIENT, refs),
        ),
        (
            "messages.events",
            lambda s: MessageRepository(s).events(
                Message(id=ROWS // 2, status="delivered", time_sent=NOW, time_dr=NOW)
            ),
        ),
        # The opt-out check of a write round: a bulk request's numbers, two clients.
        (
            "optouts.listed",
            lambda s: OptOutRepository(s).listed([CLIENT, CLIENT + 1], optout_numbers),
        ),
        # An accept round's reads in one statement on PostgreSQL: its opt-outs, its
        # references, its ids.
        (
            "admission.round_facts",
            lambda s: AdmissionRepository(s).round_facts(
                {CLIENT: optout_numbers, CLIENT + 1: optout_numbers[:10]}, {CLIENT: refs}, 100
            ),
        ),
        # Its write: the debit, the messages and the ledger entries in one statement.
        ("admission.write_round", _write_round),
    ]


async def _write_round(session: AsyncSession) -> None:
    admissions = AdmissionRepository(session)
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite writes with the repositories' own statements, checked above
    ids = (await admissions.round_facts({}, {}, 4)).ids
    rows = [
        {
            "client_id": CLIENT,
            "task_id": None,
            "channel": "sms",
            "source": "api",
            "msisdn": f"3805099{i:05d}",
            "country": "UA",
            "reference": f"new-{i}",
            "originator": "Tidings",
            "body": "hi",
            "encoding": "gsm7",
            "parts": 1,
            "tariff": 0,
            "price": Decimal(0),
            "currency": "EUR",
            "status": "queued",
            "callback_url": None,
            "supplier_id": SUPPLIER,
            "reply_to": None,
            "cost": None,
            "cost_currency": None,
            "send_at": None,
            "expires_at": NOW + timedelta(days=1),
            "time_in": NOW,
            "due_at": NOW,
        }
        for i in range(len(ids))
    ]
    ledger = [(CLIENT, Decimal(0), "charge", f"message:{id_}") for id_ in ids]
    await admissions.write_round({CLIENT: Decimal(0)}, [], [], rows, ids, ledger, NOW)


# --- The database ---------------------------------------------------------------------------

FILL = [
    "INSERT INTO clients (id, name, balance, tariff, blocked, created_at, webhook_format,"
    " retry_schedule, smpp_max_binds) VALUES"
    f" ({CLIENT}, 'acme', 0, 0, false, :now, 'ketchup', 'ketchup', 2),"
    f" ({CLIENT + 1}, 'other', 0, 0, false, :now, 'ketchup', 'ketchup', 2)",
    "INSERT INTO suppliers (id, name, kind, options, enabled, created_at) VALUES"
    f" ({SUPPLIER}, 'sim', 'simulator', '{{}}', true, :now)",
    # Messages: all but the last BACKLOG delivered; those queued, each with its dispatch job
    # (`due_at` on the message row: the queue is a partial index of messages).
    "INSERT INTO messages (id, client_id, channel, source, msisdn, country, reference,"
    " originator, body, encoding, parts, tariff, price, currency, status, supplier_id,"
    " supplier_message_id, expires_at, time_in, time_sent, time_dr, due_at)"
    f" SELECT i, {CLIENT}, 'sms', CASE WHEN i % 10 = 0 THEN 'smpp' ELSE 'api' END,"
    " '38050' || lpad(i::text, 7, '0'), 'UA', 'ref-' || i, 'Tidings', 'Your code is ' || i,"
    " 'gsm7', 1, 0, 20000, 'EUR',"
    " CASE WHEN i > :rows - :backlog THEN 'queued' ELSE 'delivered' END, :supplier,"
    " CASE WHEN i > :rows - :backlog THEN NULL ELSE 'sm-' || i END,"
    " :now + interval '1 day' - (:rows - i) * interval '1 second',"
    " :now - (:rows - i) * interval '1 second',"
    " :now - (:rows - i) * interval '1 second', :now - (:rows - i) * interval '1 second',"
    " CASE WHEN i > :rows - :backlog THEN :now - interval '1 second' END"
    " FROM generate_series(1, :rows) AS i",
    # One receipt per delivered message, matched; the last PENDING unmatched (early ones).
    "INSERT INTO receipts (id, supplier_id, supplier_message_id, status, received_at,"
    " message_id)"
    " SELECT i, :supplier, 'sm-' || i, 'delivered', :now - (:rows - i) * interval '1 second',"
    " CASE WHEN i > :rows - :pending THEN NULL ELSE i END"
    " FROM generate_series(1, :rows) AS i",
    # Every fourth message was long: two parts each.
    "INSERT INTO message_parts (id, message_id, supplier_id, part_id, seqnum, total, status)"
    " SELECT i, (i + 1) / 2 * 4, :supplier, 'pt-' || i, 2 - i % 2, 2, 'delivered'"
    " FROM generate_series(1, :rows / 2) AS i",
    # One status event per message.
    "INSERT INTO message_events (id, message_id, status, at)"
    " SELECT i, i, 'delivered', :now - (:rows - i) * interval '1 second'"
    " FROM generate_series(1, :rows) AS i",
    # One webhook per message: delivered, but for the last PENDING.
    "INSERT INTO webhook_deliveries (id, client_id, message_id, event, url, format,"
    " content_type, body, state, attempts, schedule, next_attempt_at, created_at, finished_at)"
    f" SELECT i, {CLIENT}, i, 'message.status', 'http://127.0.0.1:9/hook', 'ketchup',"
    " 'application/json', '{\"id\": ' || i || ', \"status\": \"delivered\"}',"
    " CASE WHEN i > :rows - :pending THEN 'pending' ELSE 'delivered' END, 1, '[]',"
    " :now - (:rows - i) * interval '1 second', :now - (:rows - i) * interval '1 second',"
    " CASE WHEN i > :rows - :pending THEN NULL ELSE :now END"
    " FROM generate_series(1, :rows) AS i",
    # SMPP receipts of every second message (those came in over SMPP), all sent but the last.
    "INSERT INTO smpp_receipts (id, client_id, message_id, status, done_at, created_at,"
    " attempts, sent_at)"
    f" SELECT i, {CLIENT}, i * 2, 'delivered', :now, :now, 1,"
    " CASE WHEN i > :rows / 2 - :pending THEN NULL ELSE :now END"
    " FROM generate_series(1, :rows / 2) AS i",
    # Opt-outs: a quarter as many numbers as messages, on the first client's list.
    "INSERT INTO optouts (id, client_id, msisdn, source, created_at)"
    f" SELECT i, {CLIENT}, '38050' || lpad((i * 4)::text, 7, '0'), 'keyword', :now"
    " FROM generate_series(1, :rows / 4) AS i",
    # HLR lookups: half as many, finished but for a few due.
    "INSERT INTO hlr_lookups (id, client_id, msisdn, country, reference, tariff, price,"
    " currency, source, status, ported, roaming, provider_id, created_at, status_at, due_at,"
    " attempts)"
    f" SELECT i, {CLIENT}, '38050' || lpad(i::text, 7, '0'), 'UA', 'ref-' || i, 0, 2000,"
    " 'EUR', 'api', CASE WHEN i > :rows / 2 - :pending THEN 'sent' ELSE 'active' END,"
    " false, false, :supplier, :now, :now,"
    " CASE WHEN i > :rows / 2 - :pending THEN :now - interval '1 second' END, 0"
    " FROM generate_series(1, :rows / 2) AS i",
]


def _sql_literal(value: Any) -> str:
    """A parameter as an SQL literal for EXECUTE (coerced there to the prepared type)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, list | tuple):
        items = ",".join(
            "NULL"
            if item is None
            else '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for item in value
        )
        text = "{" + items + "}"
    elif isinstance(value, dict):
        text = json.dumps(value)
    else:
        text = str(value)
    return "'" + text.replace("'", "''") + "'"


async def _capture(
    engine: AsyncEngine, call: Callable[[AsyncSession], Awaitable[object]]
) -> list[Statement]:
    """The statements `call` sends, as the driver gets them; its transaction is rolled back."""
    seen: list[Statement] = []

    def listen(_conn: Any, _cursor: Any, sql: str, parameters: Any, _ctx: Any, many: bool) -> None:
        if not sql.startswith("BEGIN"):  # SQLite's own BEGIN IMMEDIATE
            first = parameters[0] if many and parameters else parameters
            seen.append(Statement(sql, tuple(first or ())))

    async with engine.connect() as connection:
        event.listen(connection.sync_connection, "before_cursor_execute", listen)
        session = AsyncSession(bind=connection)
        try:
            await call(session)
        finally:
            await session.rollback()
            await session.close()
            event.remove(connection.sync_connection, "before_cursor_execute", listen)
    return seen


def _name(index: int, prefix: str) -> str:
    return f"{prefix}_{index}"


async def _explain(
    connection: asyncpg.Connection, name: str, statement: Statement, *, prepare: bool
) -> Any:
    if prepare:
        await connection.execute(f"PREPARE {name} AS {statement.sql}")
    arguments = ", ".join(_sql_literal(value) for value in statement.parameters)
    execute = f"EXECUTE {name}({arguments})" if statement.parameters else f"EXECUTE {name}"
    result = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {execute}")
    return json.loads(result)[0]["Plan"]


@dataclass
class Explained:
    statement: Statement
    plans: dict[str, Any]  # mode -> the plan's JSON tree


async def _build(url: str) -> dict[str, list[Explained]]:
    server = await asyncpg.connect(POSTGRES_SERVER)
    name = url.rpartition("/")[2]
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    await upgrade(url)
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    stale = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    engine = create_engine(url)
    try:
        await _old_partitions(engine)
        # Every table with storage: partitioned tables have none (their partitions do).
        for table in await admin.fetch(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = "
            "current_schema()::regnamespace"
        ):
            await admin.execute(f'ALTER TABLE "{table[0]}" SET (autovacuum_enabled = false)')
        for sql in FILL[:2]:
            await admin.execute(_fill_sql(sql))
        calls = _hot_calls()
        # Generic plans made now, on empty tables, as a gateway started on a new database
        # caches them for its prepared statements.
        await stale.execute("SET plan_cache_mode = force_generic_plan")
        prepared: dict[str, str] = {}
        for _, call in calls:
            for statement in await _capture(engine, call):
                if statement.sql not in prepared:
                    prepared[statement.sql] = _name(len(prepared), "stale")
                    await _explain(stale, prepared[statement.sql], statement, prepare=True)
        for sql in FILL[2:]:
            await admin.execute(_fill_sql(sql))
        # Report this backend's row counts to the statistics views now (not within a second).
        await admin.execute("SELECT pg_stat_force_next_flush()")
        results: dict[str, list[Explained]] = {}
        for call_name, call in calls:
            explained = []
            for statement in await _capture(engine, call):
                plans: dict[str, Any] = {}
                for mode in ("custom", "generic"):
                    async with admin.transaction():
                        await admin.execute(f"SET LOCAL plan_cache_mode = force_{mode}_plan")
                        plans[mode] = await _explain(admin, "fresh", statement, prepare=True)
                        await admin.execute("DEALLOCATE fresh")
                if statement.sql in prepared:
                    plans["cached while empty"] = await _explain(
                        stale, prepared[statement.sql], statement, prepare=False
                    )
                explained.append(Explained(statement, plans))
            results[call_name] = explained
        # The gateway's own remedy for plans cached while the tables were empty: its sweeper
        # analyzes tables that outgrew their statistics, which makes those plans again.
        sessions = create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            analyzed = await analyze_grown_tables(session)
        assert {"messages", "receipts", "webhook_deliveries"} <= {
            _table_of(name) for name in analyzed
        }
        for explained in results.values():
            for item in explained:
                sql = item.statement.sql
                if sql in prepared:
                    item.plans["cached while empty, after the sweeper's ANALYZE"] = await _explain(
                        stale, prepared[sql], item.statement, prepare=False
                    )
        return results
    finally:
        await engine.dispose()
        await stale.close()
        await admin.close()


async def _old_partitions(engine: AsyncEngine) -> None:
    """Partitions for the filled ids, OLD_PARTITIONS ranges of them (migration 0017 makes
    such partitions of a database's old ids, one per week)."""
    step = ROWS // OLD_PARTITIONS + 1
    async with create_sessionmaker(engine)() as session, session.begin():
        for n in range(OLD_PARTITIONS):
            for table in PARTITION_KEYS:
                name = f"{table}_l202602{n + 1:02d}"
                await create_range(session, table, name, n * step, (n + 1) * step)


def _fill_sql(sql: str) -> str:
    return (
        sql.replace(":now", "timestamptz '" + NOW.isoformat() + "'")
        .replace(":rows", str(ROWS))
        .replace(":pending", str(PENDING))
        .replace(":backlog", str(BACKLOG))
        .replace(":supplier", str(SUPPLIER))
    )


# --- The checks -----------------------------------------------------------------------------


def _nodes(plan: Any) -> Iterator[Any]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _shape(plan: Any, depth: int = 0) -> str:
    """The plan as indented lines: node, relation and index, estimated rows and cost."""
    where = plan.get("Relation Name", "")
    if "Index Name" in plan:
        where += f" using {plan['Index Name']}"
    line = (
        f"{'  ' * depth}{plan['Node Type']} {where}".rstrip()
        + f"  (rows={plan['Plan Rows']} cost={plan['Total Cost']})"
    )
    return "\n".join([line] + [_shape(child, depth + 1) for child in plan.get("Plans", ())])


def _faults(plan: Any, mode: str) -> list[str]:
    if mode == "cached while empty":
        return []  # shown for comparison: what the sweeper's ANALYZE repairs
    faults = [
        f"Seq Scan on {node['Relation Name']}"
        for node in _nodes(plan)
        if node["Node Type"] == "Seq Scan" and _is_big(node["Relation Name"])
    ]
    # The cost bound applies to the generic plan, the one a prepared statement keeps. A custom
    # plan serves the first five executions only, and its estimate multiplies the default
    # selectivity of an equality (0.5 % of the table) by the number of values bound: for 100
    # message ids, 100 index look-ups estimated at ~100 rows each, where each finds two. Its
    # shape (no sequential scan) is what counts; a plan made while the tables were empty has
    # their costs, so again only its shape counts.
    if mode == "generic" and plan["Total Cost"] > COST_BOUND:
        faults.append(f"estimated cost {plan['Total Cost']} > {COST_BOUND}")
    return faults


@pytest.fixture(scope="module")
def explained() -> Iterator[dict[str, list[Explained]]]:
    if not _postgres_reachable():
        if os.environ.get("TIDINGS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {POSTGRES_SERVER}")
        pytest.skip("PostgreSQL is not reachable")
    base = POSTGRES_SERVER.rpartition("/")[0]
    name = f"tidings_plans_{uuid.uuid4().hex[:10]}"
    try:
        yield asyncio.run(_build(f"{base}/{name}"))
    finally:

        async def drop() -> None:
            server = await asyncpg.connect(POSTGRES_SERVER)
            try:
                await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await server.close()

        asyncio.run(drop())


def _partitions_read(plan: Any, table: str) -> set[str]:
    return {
        node["Relation Name"]
        for node in _nodes(plan)
        if "Relation Name" in node and _table_of(node["Relation Name"]) == table
    }


def _old_partitions_of(table: str, ids: list[int]) -> set[str]:
    step = ROWS // OLD_PARTITIONS + 1
    return {f"{table}_l202602{i // step + 1:02d}" for i in ids}


# Look-ups by message id, and the partitions (of OLD_PARTITIONS and the migration's weeks)
# each may read: those of its ids, the partition key of both tables.
BY_ID = {
    "messages.get": ("messages", [ROWS // 2]),
    "messages.events": ("message_events", [ROWS // 2]),
    "messages.lock_for_update": ("messages", _ids(ROWS // 2, LOOKUPS)),
}


@pytest.mark.parametrize("call_name", sorted(BY_ID))
def test_lookups_by_id_read_one_partition(
    explained: dict[str, list[Explained]], call_name: str
) -> None:
    """Custom plans prune at planning, generic ones when they start (EXPLAIN shows only the
    partitions left, and "Subplans Removed")."""
    table, ids = BY_ID[call_name]
    [item] = [i for i in explained[call_name] if table in i.statement.sql]
    for mode in ("custom", "generic"):
        read = _partitions_read(item.plans[mode], table)
        shape = _shape(item.plans[mode])
        assert read == _old_partitions_of(table, ids), f"{call_name} ({mode}):\n{shape}"


@pytest.mark.parametrize("call_name", [name for name, _ in _hot_calls()])
def test_hot_query_plans_need_no_statistics(
    explained: dict[str, list[Explained]], call_name: str
) -> None:
    statements = explained[call_name]
    assert statements, f"{call_name} sent no SQL"
    report: list[str] = []
    failed = False
    for item in statements:
        report.append(item.statement.sql)
        for mode, plan in item.plans.items():
            faults = _faults(plan, mode)
            failed = failed or bool(faults)
            report.append(f"-- {mode} plan{': ' + '; '.join(faults) if faults else ''}")
            report.append(_shape(plan))
    assert not failed, f"{call_name} has plans that need statistics:\n" + "\n".join(report)


async def test_hot_queries_use_indexes_on_sqlite(tmp_path: Path, sqlite_template: Path) -> None:
    """SQLite has no statistics either (Tidings never runs ANALYZE there, so there is no
    sqlite_stat1): its planner picks from the indexes alone, the same for ten rows or ten
    million, so an empty database shows the plans. Each hot statement must search an index
    (or walk one in order) on every big table, never scan it."""
    path = tmp_path / "plans.db"
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite:///{path}")
    report: list[str] = []
    failed = False
    try:
        for call_name, call in _hot_calls():
            for statement in await _capture(engine, call):
                async with engine.connect() as connection:
                    result = await connection.exec_driver_sql(
                        f"EXPLAIN QUERY PLAN {statement.sql}", statement.parameters
                    )
                    details = [str(row[-1]) for row in result]
                scans = [
                    d for d in details if re.fullmatch(r"SCAN (\w+)", d) and d[5:] in BIG_TABLES
                ]
                failed = failed or bool(scans)
                report.append(f"{call_name}: {'; '.join(details)}{'  <- ' if scans else ''}")
    finally:
        await engine.dispose()
    assert not failed, "hot statements scan a table on SQLite:\n" + "\n".join(report)


async def test_the_sweeper_analyzes_tables_that_outgrew_their_statistics(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    postgres = sessions.kw["bind"].dialect.name == "postgresql"
    async with transaction(sessions) as session:
        await MessageRepository(session).insert_tasks(
            [
                {
                    "client_id": world.client_id,
                    "destination": "phones",
                    "originator": "Tidings",
                    "body": "hello",
                    "validity_hours": 24,
                    "total_price": Decimal("0.02"),
                    "currency": "EUR",
                    "created_at": clock.now(),
                }
                for _ in range(MIN_ROWS + 500)
            ]
        )
        if postgres:
            # This backend reports its row counts when it next goes idle, not within a second.
            await session.execute(text("SELECT pg_stat_force_next_flush()"))

    async with transaction(sessions) as session:
        await sweep_expired(session, clock, grace_seconds=60)
    async with transaction(sessions) as session:
        again = await analyze_grown_tables(session)
        if not postgres:
            assert again == []  # SQLite: nothing to do, ever
            return
        analyzed = (
            await session.execute(
                text(
                    "SELECT c.reltuples, s.last_analyze IS NOT NULL"
                    " FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid"
                    " WHERE c.relname = 'tasks'"
                )
            )
        ).one()
    assert analyzed[1], "the sweeper did not analyze the grown table"
    assert analyzed[0] == MIN_ROWS + 500
    assert "tasks" not in again  # analyzed once; again only when it doubles
