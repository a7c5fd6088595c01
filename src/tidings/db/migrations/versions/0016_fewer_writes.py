"""fewer writes per message (issue 18): no status history row that repeats the message row
(the console counts those by `time_sent`/`time_dr`); a first webhook attempt that succeeds
lives on its delivery row; room for HOT updates in the tables a lease updates

Revision ID: 0016_fewer_writes
Revises: 0013_supplier_rate_buckets
Create Date: 2026-12-04 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_fewer_writes"
down_revision: str | None = "0013_supplier_rate_buckets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A lease changes only unindexed columns (`locked_until`, `attempts`): with room left in the
# page PostgreSQL writes the new row version beside the old one (a HOT update) and no index
# entry. Existing pages keep their fill; new pages get the room.
HOT_TABLES = {"webhook_deliveries": 70, "dispatch_jobs": 70}


def upgrade() -> None:
    for name, column in (
        ("ix_messages_time_sent", "time_sent"),
        ("ix_messages_time_dr", "time_dr"),
    ):
        columns = [column, "status"] if column == "time_dr" else [column]
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "messages", columns, sqlite_where=where, postgresql_where=where)
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("status_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duration_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("response_body", sa.String(length=500), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for table, fillfactor in HOT_TABLES.items():
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in HOT_TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("response_body")
        batch.drop_column("duration_ms")
        batch.drop_column("status_code")
    op.drop_index("ix_messages_time_dr", table_name="messages")
    op.drop_index("ix_messages_time_sent", table_name="messages")
