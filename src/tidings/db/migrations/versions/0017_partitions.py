"""history: time-ordered 64-bit message ids; messages and message_events partitioned by week
on PostgreSQL; maintenance_runs (the workers' own schedule of pruning)

PostgreSQL, in place: the tables that hold message or task ids widen them to bigint, the
foreign keys that point at messages go (a partition must be droppable whole), and messages and
message_events are rebuilt as partitioned tables: the rows there are copied into partitions of
their week (bounds from the old ids of each week, by time_in), and new ids come from
tidings_time_id (db/ids.py). SQLite keeps plain tables: its INTEGER is 64-bit already.
docs/architecture.md, "Partitions and retention", has the measured time on 1M rows.

Revision ID: 0017_partitions
Revises: 0014_inbound
Create Date: 2026-12-04 16:20:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0017_partitions"
down_revision: str | None = "0014_inbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# db/ids.py: seconds since 2020-01-01 UTC, shifted left by 21 bits, | the sequence's low bits.
EPOCH = 1577836800
BITS = 21
WEEKS_AHEAD = 4
TIME_ID = f"""
CREATE OR REPLACE FUNCTION tidings_time_id(seq regclass) RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
  SELECT ((floor(extract(epoch FROM clock_timestamp()))::bigint - {EPOCH}) << {BITS})
         | (nextval(seq) & {(1 << BITS) - 1})
$$
"""

# Foreign keys that point at messages (dropped on PostgreSQL, restored NOT VALID on downgrade).
FOREIGN_KEYS = [
    ("dispatch_jobs", "message_id"),
    ("message_events", "message_id"),
    ("message_parts", "message_id"),
    ("messages", "parent_id"),
    ("receipts", "message_id"),
    ("smpp_inbound_parts", "message_id"),
    ("smpp_receipt_requests", "message_id"),
    ("smpp_receipts", "message_id"),
    ("viber_messages", "fallback_id"),
    ("viber_messages", "message_id"),
    ("webhook_deliveries", "message_id"),
]
# Columns of unpartitioned tables holding message or task ids: bigint, one rewrite per table.
WIDEN = {
    "dispatch_jobs": ["message_id"],
    "message_parts": ["message_id"],
    "receipts": ["message_id"],
    "smpp_inbound_parts": ["message_id"],
    "smpp_receipt_requests": ["message_id"],
    "smpp_receipts": ["message_id"],
    "viber_messages": ["message_id", "fallback_id"],
    "webhook_deliveries": ["message_id"],
    "tasks": ["id"],
}
PARTITIONED = {"messages": "id", "message_events": "message_id"}


def _fk_name(table: str, column: str) -> str:
    return f"fk_{table}_{column}_messages"


def _first_id_at(moment: datetime) -> int:
    return max(int(moment.timestamp()) - EPOCH, 0) << BITS


def _monday(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def _start(week: date) -> datetime:
    return datetime.combine(week, time(), UTC)


def upgrade() -> None:
    op.create_table(
        "maintenance_runs",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column(
            "last_run_at", sa.String(26).with_variant(sa.DateTime(timezone=True), "postgresql")
        ),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    execute = op.execute
    connection = op.get_bind()
    execute(TIME_ID)
    # Every foreign key that points at messages, FOREIGN_KEYS and any a later table added
    # (migrations merged before this one): dropped, and its column widened like WIDEN's.
    widen = {table: list(columns) for table, columns in WIDEN.items()}
    for table, name, column in connection.execute(
        sa.text(
            "SELECT c.conrelid::regclass::text, c.conname, a.attname FROM pg_constraint AS c"
            " JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'f' AND c.confrelid = 'messages'::regclass"
        )
    ).all():
        execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        if table not in PARTITIONED and column not in widen.setdefault(table, []):
            widen[table].append(column)
    for table, wanted in widen.items():
        # Only what exists: a migration merged before this one may have dropped a table.
        columns = [
            row[0]
            for row in connection.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                    " current_schema() AND table_name = :t AND column_name = ANY(:c)"
                ),
                {"t": table, "c": wanted},
            )
        ]
        if columns:
            changes = ", ".join(f'ALTER COLUMN "{c}" TYPE bigint' for c in columns)
            execute(f'ALTER TABLE "{table}" {changes}')
    execute("ALTER SEQUENCE tasks_id_seq AS bigint")

    now = connection.execute(sa.text("SELECT now()")).scalar_one()
    current = _monday(now)
    indexes = {
        table: [
            row[0]
            for row in connection.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename = :t AND indexname NOT IN (:pk, :uq, :by_message)"
                ),
                {
                    "t": table,
                    "pk": f"pk_{table}",
                    "uq": "uq_messages_client_id",
                    "by_message": "ix_message_events_message_id",  # the new primary key leads with it
                },
            )
        ]
        for table in PARTITIONED
    }
    # The weeks of the old rows, with the first id of each (ids grew with time_in).
    weeks: list[tuple[date, int]] = []
    for week, first in connection.execute(
        sa.text(
            "SELECT date_trunc('week', time_in AT TIME ZONE 'UTC')::date, min(id) "
            "FROM messages GROUP BY 1 ORDER BY 1"
        )
    ):
        if not weeks or first > weeks[-1][1]:
            weeks.append((week, first))
    weeks = [w for w in weeks if w[0] < current]  # this week's old ids join the last one

    for table, key in PARTITIONED.items():
        execute(f'ALTER TABLE "{table}" RENAME TO "{table}_unpartitioned"')
        execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
        execute(f"ALTER SEQUENCE {table}_id_seq AS bigint")
        # The columns as they are, widened on an empty template first: a partition key's type
        # cannot change once the table is partitioned.
        ids = ["id", "message_id"] if table == "message_events" else ["id", "task_id", "parent_id"]
        execute(
            f'CREATE TABLE "{table}_template" (LIKE "{table}_unpartitioned" INCLUDING DEFAULTS)'
        )
        execute(
            f'ALTER TABLE "{table}_template" '
            + ", ".join(f"ALTER COLUMN {c} TYPE bigint" for c in ids)
        )
        execute(
            f'CREATE TABLE "{table}" (LIKE "{table}_template" INCLUDING DEFAULTS) '
            f"PARTITION BY RANGE ({key})"
        )
        execute(f'DROP TABLE "{table}_template"')
        execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        if table == "messages":
            execute(
                "ALTER TABLE messages ALTER COLUMN id SET DEFAULT tidings_time_id('messages_id_seq')"
            )
        # Storage parameters (fillfactor, …) belong to each partition: the old table's go to
        # every partition, and the DEFAULT one keeps them for the weeks made later.
        options = connection.execute(
            sa.text(
                "SELECT array_to_string(reloptions, ', ') FROM pg_class WHERE oid = CAST(:t AS regclass)"
            ),
            {"t": f"{table}_unpartitioned"},
        ).scalar_one()
        names = _make_partitions(table, weeks, current, f" WITH ({options})" if options else "")
        execute(f'INSERT INTO "{table}" SELECT * FROM "{table}_unpartitioned"')
        execute(f'DROP TABLE "{table}_unpartitioned"')
        if table == "messages":
            execute("ALTER TABLE messages ADD CONSTRAINT pk_messages PRIMARY KEY (id)")
            for name in names:
                execute(
                    f'CREATE UNIQUE INDEX "{name}_client_reference" ON "{name}" (client_id, reference)'
                )
            for column, target in (
                ("client_id", "clients"),
                ("supplier_id", "suppliers"),
                ("task_id", "tasks"),
            ):
                execute(
                    f"ALTER TABLE messages ADD CONSTRAINT fk_messages_{column}_{target} "
                    f"FOREIGN KEY ({column}) REFERENCES {target} (id)"
                )
        else:
            execute(
                "ALTER TABLE message_events ADD CONSTRAINT pk_message_events PRIMARY KEY (message_id, id)"
            )
        for definition in indexes[table]:
            execute(definition)


def _make_partitions(
    table: str, weeks: list[tuple[date, int]], current: date, storage: str
) -> list[str]:
    """The partitions of the old weeks (`_l`), of this week and the coming ones (`_w`), and the
    DEFAULT one; their names."""
    names: list[str] = []
    for n, (week, first) in enumerate(weeks):
        lower = "MINVALUE" if n == 0 else str(first)
        upper = str(weeks[n + 1][1]) if n + 1 < len(weeks) else str(_first_id_at(_start(current)))
        names.append(f"{table}_l{week:%Y%m%d}")
        op.execute(
            f'CREATE TABLE "{names[-1]}" PARTITION OF "{table}" FOR VALUES FROM ({lower}) TO ({upper})'
            + storage
        )
    for n in range(WEEKS_AHEAD + 1):
        week = current + timedelta(days=7 * n)
        start = _start(week)
        low, high = _first_id_at(start), _first_id_at(start + timedelta(days=7))
        names.append(f"{table}_w{week:%Y%m%d}")
        op.execute(
            f'CREATE TABLE "{names[-1]}" PARTITION OF "{table}" FOR VALUES FROM ({low}) TO ({high})'
            + storage
        )
    names.append(f"{table}_default")
    op.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT' + storage)
    return names


def downgrade() -> None:
    op.drop_table("maintenance_runs")
    if op.get_bind().dialect.name != "postgresql":
        return
    execute = op.execute
    connection = op.get_bind()
    # Back to plain tables; the ids stay bigint (those taken since do not fit an integer).
    for table in PARTITIONED:
        indexes = [
            row[0]
            for row in connection.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename = :t AND indexname <> :pk"
                ),
                {"t": table, "pk": f"pk_{table}"},
            )
        ]
        execute(f'CREATE TABLE "{table}_plain" (LIKE "{table}" INCLUDING DEFAULTS)')
        execute(f'INSERT INTO "{table}_plain" SELECT * FROM "{table}"')
        execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
        execute(f'DROP TABLE "{table}"')
        execute(f'ALTER TABLE "{table}_plain" RENAME TO "{table}"')
        execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq')")
        execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id)")
        for definition in indexes:
            execute(definition.replace(" ONLY ", " "))
    execute(
        "ALTER TABLE messages ADD CONSTRAINT uq_messages_client_id UNIQUE (client_id, reference)"
    )
    execute("CREATE INDEX ix_message_events_message_id ON message_events (message_id)")
    for column, target in (
        ("client_id", "clients"),
        ("supplier_id", "suppliers"),
        ("task_id", "tasks"),
    ):
        execute(
            f"ALTER TABLE messages ADD CONSTRAINT fk_messages_{column}_{target} "
            f"FOREIGN KEY ({column}) REFERENCES {target} (id)"
        )
    # NOT VALID: pruning may have left rows of other tables without their message.
    for table, column in FOREIGN_KEYS:
        if connection.execute(sa.text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            continue  # dropped by a later migration's downgrade order
        execute(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{_fk_name(table, column)}" '
            f"FOREIGN KEY ({column}) REFERENCES messages (id) NOT VALID"
        )
    execute("DROP FUNCTION tidings_time_id(regclass)")
