"""smpp: durable parts of incoming long messages, receipts per part, default alphabet per
client; webhooks: a globally unique webhook id

Revision ID: 0010_smpp_trust
Revises: 0009_webhook_queue
Create Date: 2026-12-04 12:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision: str = "0010_smpp_trust"
down_revision: str | None = "0009_webhook_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smpp_inbound_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("assembly", sa.String(length=120), nullable=False),
        sa.Column("seqnum", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("reply_id", sa.String(length=40), nullable=False),
        sa.Column("registered_delivery", sa.Integer(), nullable=False),
        sa.Column("pdu", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("failed_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_smpp_inbound_parts_reply_id", "smpp_inbound_parts", ["reply_id"], unique=True
    )
    op.create_index("ix_smpp_inbound_parts_message_id", "smpp_inbound_parts", ["message_id"])
    # Incomplete parts (read when the server starts): a partial index would do on PostgreSQL,
    # a plain one works on both.
    op.create_index("ix_smpp_inbound_parts_open", "smpp_inbound_parts", ["message_id", "failed_at"])
    with op.batch_alter_table("smpp_receipts") as batch:
        batch.alter_column("message_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("reply_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("part_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_smpp_receipts_part_id", "smpp_inbound_parts", ["part_id"], ["id"]
        )
    with op.batch_alter_table("clients") as batch:
        batch.add_column(
            sa.Column("smpp_charset", sa.String(length=16), nullable=False, server_default="gsm7")
        )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("webhook_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("webhook_id")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("smpp_charset")
    with op.batch_alter_table("smpp_receipts") as batch:
        batch.drop_constraint("fk_smpp_receipts_part_id", type_="foreignkey")
        batch.drop_column("part_id")
        batch.drop_column("reply_id")
        batch.alter_column("message_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_smpp_inbound_parts_open", table_name="smpp_inbound_parts")
    op.drop_index("ix_smpp_inbound_parts_message_id", table_name="smpp_inbound_parts")
    op.drop_index("ix_smpp_inbound_parts_reply_id", table_name="smpp_inbound_parts")
    op.drop_table("smpp_inbound_parts")
