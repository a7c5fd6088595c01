"""optouts: numbers that asked a client to stop, and the client's confirmation replies

Revision ID: 0015_optouts
Revises: 0013_supplier_rate_buckets
Create Date: 2026-12-04 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision: str = "0015_optouts"
down_revision: str | None = "0013_supplier_rate_buckets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "optouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("keyword", sa.String(length=64), nullable=True),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_optouts_client_msisdn", "optouts", ["client_id", "msisdn"], unique=True)
    op.create_table(
        "optout_settings",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("optout_confirmation", sa.Text(), nullable=True),
        sa.Column("optin_confirmation", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.PrimaryKeyConstraint("client_id"),
    )


def downgrade() -> None:
    op.drop_table("optout_settings")
    op.drop_index("uq_optouts_client_msisdn", table_name="optouts")
    op.drop_table("optouts")
