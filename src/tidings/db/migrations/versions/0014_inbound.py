"""inbound messages (MO): numbers, inbound_messages, inbound_parts; clients.mo_url,
messages.reply_to, smpp_receipts.inbound_id

Revision ID: 0014_inbound
Revises: 0018_export_files
Create Date: 2026-12-04 16:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision: str = "0014_inbound"
down_revision: str | None = "0018_export_files"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("keyword", sa.String(length=32), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=True),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_numbers_client_id", "numbers", ["client_id"])
    op.create_index("uq_numbers_number_keyword", "numbers", ["number", "keyword"], unique=True)
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("supplier_id", sa.Integer(), nullable=True),
        sa.Column("supplier_message_id", sa.String(length=100), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("keyword", sa.String(length=32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("received_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_inbound_messages_supplier_ref",
        "inbound_messages",
        ["supplier_id", "supplier_message_id"],
        unique=True,
    )
    op.create_index("ix_inbound_messages_client", "inbound_messages", ["client_id", "id"])
    op.create_index(
        "ix_inbound_messages_fingerprint", "inbound_messages", ["supplier_id", "fingerprint"]
    )
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])
    op.create_table(
        "inbound_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("assembly", sa.String(length=120), nullable=False),
        sa.Column("seqnum", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("units", sa.LargeBinary(), nullable=False),
        sa.Column("alphabet", sa.String(length=8), nullable=False),
        sa.Column("received_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_inbound_parts_assembly", "inbound_parts", ["supplier_id", "assembly", "seqnum"]
    )
    # Plain columns without foreign keys: on SQLite a foreign key added to an existing table
    # means copying the table (messages is the biggest one).
    op.add_column("clients", sa.Column("mo_url", sa.String(length=2000), nullable=True))
    op.add_column("messages", sa.Column("reply_to", sa.Integer(), nullable=True))
    op.add_column("smpp_receipts", sa.Column("inbound_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("smpp_receipts", "inbound_id")
    op.drop_column("messages", "reply_to")
    op.drop_column("clients", "mo_url")
    op.drop_table("inbound_parts")
    op.drop_table("inbound_messages")
    op.drop_table("numbers")
