"""smpp: durable part ids of long messages, and the receipts an SMPP submit asked for

Revision ID: 0007_smpp_parts
Revises: 0006_operators
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_smpp_parts"
down_revision: str | None = "0006_operators"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.String(length=100), nullable=False),
        sa.Column("seqnum", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_message_parts_supplier_ref", "message_parts", ["supplier_id", "part_id"], unique=False
    )
    op.create_index("ix_message_parts_message_id", "message_parts", ["message_id"], unique=False)
    op.create_table(
        "smpp_receipt_requests",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("registered_delivery", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )


def downgrade() -> None:
    op.drop_table("smpp_receipt_requests")
    op.drop_index("ix_message_parts_message_id", table_name="message_parts")
    op.drop_index("ix_message_parts_supplier_ref", table_name="message_parts")
    op.drop_table("message_parts")
