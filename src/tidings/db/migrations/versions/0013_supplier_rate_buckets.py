"""suppliers: a throughput limit shared by every process (supplier_rate_buckets)

Revision ID: 0013_supplier_rate_buckets
Revises: 0012_plans_without_statistics
Create Date: 2026-12-04 13:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_supplier_rate_buckets"
down_revision: str | None = "0012_plans_without_statistics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supplier_rate_buckets",
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("booked_until_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("supplier_id"),
    )


def downgrade() -> None:
    op.drop_table("supplier_rate_buckets")
