"""operators: console accounts, the console's secrets, and the indexes its queries walk

Revision ID: 0006_operators
Revises: 0005_viber
Create Date: 2026-11-24 09:40:00.000000

Two indexes for the console (docs/console.md): message events by time (the traffic charts
count a time window of them by status without touching the table) and messages by phone
number (the search). On a large PostgreSQL database create them beforehand with
`CREATE INDEX CONCURRENTLY` under the same names to avoid blocking writes; this migration
then skips them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import tidings.db.base

revision: str = "0006_operators"
down_revision: str | None = "0005_viber"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_message_events_at_status", "message_events", ["at", "status"]),
    ("ix_messages_msisdn", "messages", ["msisdn", "id"]),
)


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("name", name=op.f("uq_operators_name")),
    )
    op.create_table(
        "console_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_console_secrets")),
    )
    for name, table, columns in INDEXES:
        existing: set[str | None] = set()
        if not context.is_offline_mode():
            existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}
        if name not in existing:
            op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("console_secrets")
    op.drop_table("operators")
