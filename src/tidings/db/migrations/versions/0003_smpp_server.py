"""smpp server: client bind credentials and the receipts owed to SMPP clients

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("smpp_system_id", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("smpp_password_hash", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("smpp_max_binds", sa.Integer(), nullable=False, server_default="2")
        )
        batch.add_column(sa.Column("smpp_throughput", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_clients_smpp_system_id", ["smpp_system_id"])
    op.create_table(
        "smpp_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("done_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_smpp_receipts_pending", "smpp_receipts", ["client_id", "sent_at", "id"], unique=False
    )
    op.create_index("ix_smpp_receipts_message_id", "smpp_receipts", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_smpp_receipts_message_id", table_name="smpp_receipts")
    op.drop_index("ix_smpp_receipts_pending", table_name="smpp_receipts")
    op.drop_table("smpp_receipts")
    with op.batch_alter_table("clients") as batch:
        batch.drop_constraint("uq_clients_smpp_system_id", type_="unique")
        batch.drop_column("smpp_throughput")
        batch.drop_column("smpp_max_binds")
        batch.drop_column("smpp_password_hash")
        batch.drop_column("smpp_system_id")
