"""Weekly partitions of the message history on PostgreSQL (docs/architecture.md, "Partitions
and retention").

`messages` is partitioned by RANGE of its id and `message_events` by RANGE of its message_id,
with the same bounds: a week's partition holds the ids taken that week (ids are time-ordered,
db/ids.py), so a message and its history are in partitions of the same name and a look-up by
id reads one partition. Each table also has a DEFAULT partition, a safety net for ids of a
week nobody created (workers down for weeks) and the home of the still-open rows of a pruned
week. Partitions from before the migration (old, small ids) are named `_l` + the Monday of
their week, the ones made since `_w` + theirs; the name says when a partition's week ends.

The workers create the partitions of the coming weeks themselves (retention/service.py); no
external scheduler. Every statement here is DDL on our own names (no input reaches it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.ids import first_id_at
from tidings.messages.models import IN_FLIGHT_PREDICATE, PENDING_PREDICATE

# The partitioned tables and their partition key (the message id in both).
PARTITION_KEYS = {"messages": "id", "message_events": "message_id"}
PARENT = "messages"
WEEK = timedelta(days=7)
WEEKS_AHEAD = 4  # the current week and this many more exist at any time
# DDL waits at most this long for the tables' locks, then gives up until the next run, rather
# than queue every insert and read of the hot path behind it.
LOCK_TIMEOUT = "3s"

_NAME = re.compile(r"_([wl])(\d{8})$")
_BOUND = re.compile(r"FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    lower: int | None  # None: MINVALUE (or the DEFAULT partition)
    upper: int | None
    week: date | None  # the Monday its week starts; None for the DEFAULT partition

    @property
    def ends_at(self) -> datetime | None:
        if self.week is None:
            return None
        return datetime.combine(self.week, time(), UTC) + WEEK

    @property
    def suffix(self) -> str:
        return self.name.removeprefix(self.table)


def week_of(moment: datetime) -> date:
    """The Monday (UTC) of `moment`'s week."""
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def week_bounds(week: date) -> tuple[int, int]:
    start = datetime.combine(week, time(), UTC)
    return first_id_at(start), first_id_at(start + WEEK)


def partition_name(table: str, week: date) -> str:
    return f"{table}_w{week:%Y%m%d}"


def open_messages_sql(partition: str) -> str:
    """The ids in a partition of `messages` whose history must stay: not final yet, a webhook
    or an SMPP receipt still to send, or the Viber message of an SMS fallback still open.

    Each term walks an index or a small queue, not the partition: the statuses are written as
    the sweeper's partial indexes are (`ix_messages_pending_expiry`, `…_in_flight_expiry`),
    pending webhooks are the claim's partial index, unsent SMPP receipts are found per client
    by `ix_smpp_receipts_pending (client_id, sent_at, id)`, fallbacks by `parent_id`."""
    return f"""
        WITH open_ids AS (
            SELECT id FROM "{partition}" WHERE {PENDING_PREDICATE}
            UNION
            SELECT id FROM "{partition}" WHERE {IN_FLIGHT_PREDICATE}
            UNION
            SELECT d.message_id FROM webhook_deliveries AS d JOIN "{partition}" AS m
              ON m.id = d.message_id WHERE d.state = 'pending'
            UNION
            SELECT r.message_id FROM clients AS c
              JOIN smpp_receipts AS r ON r.client_id = c.id AND r.sent_at IS NULL
              JOIN "{partition}" AS m ON m.id = r.message_id
        )
        SELECT id FROM open_ids
        UNION
        SELECT m.parent_id FROM "{partition}" AS m
        WHERE m.id IN (SELECT id FROM open_ids) AND m.parent_id IS NOT NULL
        UNION
        SELECT c.parent_id FROM messages AS c
        WHERE c.parent_id >= :lower AND c.parent_id < :upper
          AND ({PENDING_PREDICATE} OR {IN_FLIGHT_PREDICATE})
    """


async def partitions(session: AsyncSession, table: str) -> list[Partition]:
    """The partitions of `table`, in id order (the DEFAULT partition last)."""
    result = await session.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    )
    found = [_partition(table, name, bound) for name, bound in result]
    return sorted(found, key=lambda p: (p.week is None, p.lower or -1))


def _partition(table: str, name: str, bound: str) -> Partition:
    named = _NAME.search(name)
    week = datetime.strptime(named.group(2), "%Y%m%d").date() if named else None
    limits = _BOUND.search(bound)
    if limits is None:  # DEFAULT
        return Partition(table, name, None, None, None)
    lower, upper = (None if v == "MINVALUE" else int(v.strip("'")) for v in limits.groups())
    return Partition(table, name, lower, upper, week)


async def is_partitioned(session: AsyncSession) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return False
    kind: str | None = await session.scalar(
        text("SELECT relkind::text FROM pg_class WHERE oid = 'messages'::regclass")
    )
    return kind == "p"


async def database_now(session: AsyncSession) -> datetime:
    moment: datetime = await session.scalar(text("SELECT now()"))
    return moment


async def ensure_weeks(
    session: AsyncSession, now: datetime, weeks_ahead: int = WEEKS_AHEAD
) -> list[str]:
    """Create the partitions of the current week and the `weeks_ahead` after it that are
    missing; the names created."""
    first = week_of(now)
    return await create_weeks(session, [first + WEEK * n for n in range(weeks_ahead + 1)])


async def create_weeks(session: AsyncSession, weeks: list[date]) -> list[str]:
    """Create the partitions of these weeks, where missing, in every partitioned table.

    Rows of such a week already in the DEFAULT partition (nobody made the week in time) are
    moved into the new partition first, which PostgreSQL requires before it attaches it."""
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    created: list[str] = []
    for table in PARTITION_KEYS:
        existing = {p.name for p in await partitions(session, table)}
        for week in weeks:
            name = partition_name(table, week)
            if name in existing:
                continue
            lower, upper = week_bounds(week)
            await create_range(session, table, name, lower, upper)
            created.append(name)
    return created


async def create_range(
    session: AsyncSession, table: str, name: str, lower: int, upper: int
) -> None:
    """Make partition `name` of `table` for ids [lower, upper), taking over the rows of that
    range that wait in the DEFAULT partition."""
    key = PARTITION_KEYS[table]
    default = f"{table}_default"
    # Storage parameters (fillfactor, …) are each partition's own: the DEFAULT partition's
    # are the template (migration 0017 gives it the table's).
    options = await session.scalar(
        text("SELECT array_to_string(reloptions, ', ') FROM pg_class WHERE relname = :name"),
        {"name": default},
    )
    storage = f" WITH ({options})" if options else ""
    statements = [
        f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        + storage,
        f'WITH moved AS (DELETE FROM "{default}" WHERE {key} >= {lower} AND {key} < {upper} '
        f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved',
        *_own_indexes(table, name),
        f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES FROM ({lower}) TO ({upper})',
    ]
    for statement in statements:
        await session.execute(text(statement))


def _own_indexes(table: str, name: str) -> list[str]:
    """The indexes a partition has of its own, besides its parent's: a reference is unique
    per client within a partition (PostgreSQL has no unique index across partitions that
    leaves out the partition key; across weeks the accept path's check holds it)."""
    if table != PARENT:
        return []
    return [f'CREATE UNIQUE INDEX "{name}_client_reference" ON "{name}" (client_id, reference)']


@dataclass(frozen=True)
class Dropped:
    week: date
    partitions: list[str]
    lower: int | None
    upper: int | None
    rows: int  # messages in the week (exact: counted before the drop)
    kept: int  # of them still open, moved to the DEFAULT partition


async def count_rows(session: AsyncSession, partition: Partition) -> int:
    """The rows of an expired week (a read of the whole partition: done before drop_week,
    outside its lock; nothing adds rows to a week past retention)."""
    return int(await session.scalar(text(f'SELECT count(*) FROM "{partition.name}"')) or 0)


async def drop_week(session: AsyncSession, messages_partition: Partition, rows: int) -> Dropped:
    """Detach a week's partitions, put its still-open messages (and their history) back into
    the tables, where they land in the DEFAULT partitions, and drop the rest whole: one
    transaction, no row-by-row DELETE, nothing for VACUUM. DETACH locks the tables until
    the commit, so everything here is proportional to the open messages, not the week."""
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    week = messages_partition.week
    assert week is not None
    names = {t: t + messages_partition.suffix for t in PARTITION_KEYS}
    present = {t: {p.name for p in await partitions(session, t)} for t in PARTITION_KEYS}
    for table, name in names.items():
        if name in present[table]:
            await session.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"'))
    part = names[PARENT]
    bounds = {"lower": messages_partition.lower or 0, "upper": messages_partition.upper or 0}
    await session.execute(
        text(f"CREATE TEMPORARY TABLE kept_ids ON COMMIT DROP AS {open_messages_sql(part)}"),
        bounds,
    )
    await session.execute(
        text(f'INSERT INTO messages SELECT * FROM "{part}" WHERE id IN (SELECT id FROM kept_ids)')
    )
    kept = int(await session.scalar(text("SELECT count(*) FROM kept_ids")) or 0)
    events = names["message_events"]
    if events in present["message_events"]:
        await session.execute(
            text(
                f'INSERT INTO message_events SELECT * FROM "{events}" '
                "WHERE message_id IN (SELECT id FROM kept_ids)"
            )
        )
    dropped = [n for t, n in names.items() if n in present[t]]
    await session.execute(text("DROP TABLE kept_ids"))
    await session.execute(text("DROP TABLE " + ", ".join(f'"{n}"' for n in dropped)))
    return Dropped(week, dropped, messages_partition.lower, messages_partition.upper, rows, kept)


async def prune_default(session: AsyncSession, cutoff: datetime) -> int:
    """Delete the messages of the DEFAULT partition taken before `cutoff` that have closed
    since (the open messages of weeks pruned earlier), with their history: the partition is
    small (open messages only), so a DELETE there is cheap. The number deleted."""
    part = f"{PARENT}_default"
    result = await session.execute(
        text(
            f"""
            WITH keep AS ({open_messages_sql(part)}),
            gone AS (
                DELETE FROM "{part}" WHERE time_in < :cutoff
                  AND id NOT IN (SELECT id FROM keep WHERE id IS NOT NULL)
                RETURNING id
            ),
            events AS (
                DELETE FROM "message_events_default"
                WHERE message_id IN (SELECT id FROM gone)
            )
            SELECT count(*) FROM gone
            """
        ),
        {"cutoff": cutoff, "lower": 0, "upper": 2**63 - 1},
    )
    return int(result.scalar_one())
