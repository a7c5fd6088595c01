"""fewer writes per message (issue 18): the dispatch job is columns of its message (the
table becomes a view); no status history row that repeats the message row (the console
counts those by `time_sent`/`time_dr`); a first webhook attempt that succeeds lives on its
delivery row; room for HOT updates in the tables a lease updates

Revision ID: 0016_fewer_writes
Revises: 0017_partitions
Create Date: 2026-12-04 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tidings.db.base import UTCDateTime

revision: str = "0016_fewer_writes"
down_revision: str | None = "0017_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A lease changes only unindexed columns (`locked_until`, `attempts`): with room left in the
# page PostgreSQL writes the new row version beside the old one (a HOT update) and no index
# entry. A claim leases rows inserted together, i.e. whole pages at once, so a page needs room
# for a new version of each of its rows: half (measured: at 85 and 70 only a fifth and 60 %
# of the leases were HOT; at 50 all, −1.4 KB of WAL per message; docs/architecture.md,
# "What one message costs the database"). The price is a heap about twice the size for these
# two tables. Existing pages keep their fill; new pages get the room.
HOT_TABLES = {"webhook_deliveries": 50, "messages": 50}

JOB_COLUMNS = ("due_at", "locked_until", "attempts", "last_error")
VIEW = (
    "CREATE VIEW dispatch_jobs AS SELECT id AS message_id, supplier_id, due_at, attempts,"
    " locked_until, last_error FROM messages WHERE due_at IS NOT NULL"
)


# Indexes of messages made partial: the row versions without the value write no entry.
PARTIAL = {
    "ix_messages_supplier_ref": (["supplier_id", "supplier_message_id"], "supplier_message_id"),
    "ix_messages_parent_id": (["parent_id"], "parent_id"),
}


def upgrade() -> None:
    _jobs_into_messages()
    for name, (columns, column) in PARTIAL.items():
        op.drop_index(name, table_name="messages")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "messages", columns, sqlite_where=where, postgresql_where=where)
    for name, column in (
        ("ix_messages_time_sent", "time_sent"),
        ("ix_messages_time_dr", "time_dr"),
    ):
        columns = [column, "status"] if column == "time_dr" else [column]
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "messages", columns, sqlite_where=where, postgresql_where=where)
    op.add_column("webhook_deliveries", sa.Column("status_code", sa.Integer(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("duration_ms", sa.Integer(), nullable=True))
    op.add_column(
        "webhook_deliveries", sa.Column("response_body", sa.String(length=500), nullable=True)
    )
    if op.get_bind().dialect.name == "postgresql":
        for table, fillfactor in HOT_TABLES.items():
            for target in _storage_tables(table):
                op.execute(f"ALTER TABLE {target} SET (fillfactor = {fillfactor})")


def _storage_tables(table: str) -> list[str]:
    """The table, or, when it is partitioned (issue 18's history partitions), its partitions:
    PostgreSQL 15 keeps storage parameters on the partitions only (a partition made later
    must be created `WITH (fillfactor = …)` by whoever makes it)."""
    bind = op.get_bind()
    kind = bind.execute(
        sa.text("SELECT relkind::text FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table}
    ).scalar()
    if kind != "p":
        return [table]
    rows = bind.execute(
        sa.text(
            "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c"
            " ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass) ORDER BY 1"
        ),
        {"t": table},
    )
    return [row[0] for row in rows]


def _jobs_into_messages() -> None:
    """The dispatch queue moves into `messages`: four columns, a partial index, the waiting
    jobs copied over (one UPDATE), the table dropped and a view by its name for readers."""
    # Plain ALTER TABLE … ADD COLUMN on both engines: no batch, which on SQLite would copy
    # the table and fail its DROP while other tables' rows refer to it.
    op.add_column("messages", sa.Column("due_at", UTCDateTime(timezone=True), nullable=True))
    op.add_column("messages", sa.Column("locked_until", UTCDateTime(timezone=True), nullable=True))
    op.add_column(
        "messages",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("messages", sa.Column("last_error", sa.String(length=200), nullable=True))
    copied = ", ".join(
        f"{c} = (SELECT j.{c} FROM dispatch_jobs j WHERE j.message_id = messages.id)"
        for c in JOB_COLUMNS
    )
    op.execute(
        f"UPDATE messages SET {copied}, supplier_id = (SELECT j.supplier_id FROM dispatch_jobs j"
        " WHERE j.message_id = messages.id) WHERE id IN (SELECT message_id FROM dispatch_jobs)"
    )
    op.drop_index("ix_dispatch_jobs_claim", table_name="dispatch_jobs")
    op.drop_table("dispatch_jobs")
    where = sa.text("due_at IS NOT NULL")
    op.create_index(
        "ix_messages_dispatch",
        "messages",
        ["supplier_id", "due_at", "id"],
        sqlite_where=where,
        postgresql_where=where,
    )
    op.execute(VIEW)


def downgrade() -> None:
    for name, (columns, _) in PARTIAL.items():
        op.drop_index(name, table_name="messages")
        op.create_index(name, "messages", columns)
    op.execute("DROP VIEW dispatch_jobs")
    # The table as 0017 left it: on PostgreSQL a bigint message id and no foreign key to the
    # partitioned messages (0017's downgrade puts that back); SQLite keeps its foreign keys.
    postgres = op.get_bind().dialect.name == "postgresql"
    to_messages = [] if postgres else [sa.ForeignKeyConstraint(["message_id"], ["messages.id"])]
    op.create_table(
        "dispatch_jobs",
        sa.Column("message_id", sa.BigInteger() if postgres else sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("due_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        *to_messages,
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(
        "ix_dispatch_jobs_claim", "dispatch_jobs", ["supplier_id", "due_at", "message_id"]
    )
    op.execute(
        "INSERT INTO dispatch_jobs (message_id, supplier_id, due_at, attempts, locked_until,"
        " last_error) SELECT id, supplier_id, due_at, attempts, locked_until, last_error"
        " FROM messages WHERE due_at IS NOT NULL"
    )
    op.drop_index("ix_messages_dispatch", table_name="messages")
    for column in reversed(JOB_COLUMNS):
        op.drop_column("messages", column)
    if op.get_bind().dialect.name == "postgresql":
        for table in HOT_TABLES:
            for target in _storage_tables(table):
                op.execute(f"ALTER TABLE {target} RESET (fillfactor)")
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+): no table copy.
    for column in ("response_body", "duration_ms", "status_code"):
        op.drop_column("webhook_deliveries", column)
    op.drop_index("ix_messages_time_dr", table_name="messages")
    op.drop_index("ix_messages_time_sent", table_name="messages")
