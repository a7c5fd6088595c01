"""statistics exports

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000

The `exports` table, and an index on messages (client, time_in, id) that an export's query
walks. On a large PostgreSQL `messages` table, building the index blocks writes to it for
a while; create it beforehand with `CREATE INDEX CONCURRENTLY ix_messages_client_time_in
ON messages (client_id, time_in, id)` to avoid that (this migration then skips it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import tidings.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGES_INDEX = "ix_messages_client_time_in"


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("locked_until", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("sizes", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_exports_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
        sa.UniqueConstraint("key", name=op.f("uq_exports_key")),
    )
    op.create_index(op.f("ix_exports_client_id"), "exports", ["client_id"], unique=False)
    op.create_index("ix_exports_expires_at", "exports", ["expires_at"], unique=False)
    op.create_index("ix_exports_state_created", "exports", ["state", "created_at"], unique=False)
    existing: set[str | None] = set()
    if not context.is_offline_mode():
        existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("messages")}
    if MESSAGES_INDEX not in existing:
        op.create_index(MESSAGES_INDEX, "messages", ["client_id", "time_in", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(MESSAGES_INDEX, table_name="messages")
    op.drop_index("ix_exports_state_created", table_name="exports")
    op.drop_index("ix_exports_expires_at", table_name="exports")
    op.drop_index(op.f("ix_exports_client_id"), table_name="exports")
    op.drop_table("exports")
