"""routing: failover, circuit breakers, supplier costs, exchange rates, message costs

Revision ID: 0008_routing
Revises: 0007_smpp_parts
Create Date: 2026-12-04 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tidings.db.base import Money, UTCDateTime

revision: str = "0008_routing"
down_revision: str | None = "0007_smpp_parts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("routes") as batch:
        batch.add_column(
            sa.Column("strategy", sa.String(length=8), nullable=False, server_default="priority")
        )
        batch.add_column(
            sa.Column("hlr_routing", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("overflow", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("cost", Money(), nullable=True))
        batch.add_column(sa.Column("cost_currency", sa.String(length=3), nullable=True))
    op.create_table(
        "supplier_health",
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("window_started", UTCDateTime(), nullable=False),
        sa.Column("window_total", sa.Integer(), nullable=False),
        sa.Column("window_failed", sa.Integer(), nullable=False),
        sa.Column("probe_at", UTCDateTime(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("supplier_id"),
    )
    op.create_table(
        "supplier_costs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("mcc", sa.String(length=3), nullable=False),
        sa.Column("mnc", sa.String(length=3), nullable=False),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "supplier_id", "type", "country", "mcc", "mnc", name="uq_supplier_costs"
        ),
    )
    op.create_table(
        "fx_rates",
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("base", "quote"),
    )
    # HLR routing looks up the latest result per number (one query per accepted batch).
    op.create_index("ix_hlr_lookups_msisdn", "hlr_lookups", ["msisdn", "status_at"])


def downgrade() -> None:
    op.drop_index("ix_hlr_lookups_msisdn", table_name="hlr_lookups")
    op.drop_table("fx_rates")
    op.drop_table("supplier_costs")
    op.drop_table("supplier_health")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("cost_currency")
        batch.drop_column("cost")
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("overflow")
        batch.drop_column("hlr_routing")
        batch.drop_column("strategy")
