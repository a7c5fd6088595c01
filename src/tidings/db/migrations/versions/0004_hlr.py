"""hlr: HLR lookups (seed 004), each its own work item

Revision ID: 0004_hlr
Revises: 0003
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision: str = "0004_hlr"
# "0003" is the id 0003_smpp_server.py declares.
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hlr_lookups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("tariff", sa.Integer(), nullable=False),
        sa.Column("price", tidings.db.base.Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("network", sa.String(length=6), nullable=True),
        sa.Column("ported", sa.Boolean(), nullable=False),
        sa.Column("roaming", sa.Boolean(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("provider_ref", sa.String(length=64), nullable=True),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.ForeignKeyConstraint(["provider_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "reference", name="uq_hlr_lookups_client_reference"),
    )
    op.create_index("ix_hlr_lookups_due", "hlr_lookups", ["due_at"], unique=False)
    op.create_index(
        "ix_hlr_lookups_client_created", "hlr_lookups", ["client_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_hlr_lookups_client_created", table_name="hlr_lookups")
    op.drop_index("ix_hlr_lookups_due", table_name="hlr_lookups")
    op.drop_table("hlr_lookups")
