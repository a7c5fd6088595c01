"""Indexes whose plans need no statistics: claims walk them in order, queues are partial

Revision ID: 0012_plans_without_statistics
Revises: 0010_smpp_trust
Create Date: 2026-12-04 13:10:00.000000

- dispatch_jobs: the claim orders by (due_at, message_id) within a supplier; with
  message_id in the index the claim reads the first due rows in index order and stops at its
  LIMIT (no sort of a supplier's whole backlog).
- hlr_lookups: only lookups still to be asked carry `due_at`; the claim's index holds only
  those, per provider in claim order (`due_at <= $1` implies `due_at IS NOT NULL`, so generic
  plans use it).
- messages: the sweeper's two queues by validity, partial (not sent yet; sent and awaiting a
  final report) instead of (status, expires_at) over every message: the sweeper reads the
  first expired rows in index order, and final messages leave these indexes.
- receipts: the receipts still waiting for their message (`message_id IS NULL`), in id order:
  the catch-up matcher reads them without walking the millions of matched ones.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_plans_without_statistics"
down_revision: str | None = "0010_smpp_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = sa.text("due_at IS NOT NULL")
WAITING = sa.text("message_id IS NULL")
# Exactly as messages.models.status_predicate writes them (SQLite matches partial indexes by
# the WHERE term's exact form).
PENDING = sa.text("status IN ('accepted', 'queued', 'scheduled')")
IN_FLIGHT = sa.text("status IN ('sent', 'unknown')")


def upgrade() -> None:
    op.drop_index("ix_dispatch_jobs_claim", table_name="dispatch_jobs")
    op.create_index(
        "ix_dispatch_jobs_claim", "dispatch_jobs", ["supplier_id", "due_at", "message_id"]
    )
    op.drop_index("ix_hlr_lookups_due", table_name="hlr_lookups")
    op.create_index(
        "ix_hlr_lookups_due",
        "hlr_lookups",
        ["provider_id", "due_at", "id"],
        sqlite_where=DUE,
        postgresql_where=DUE,
    )
    op.create_index(
        "ix_receipts_waiting", "receipts", ["id"], sqlite_where=WAITING, postgresql_where=WAITING
    )
    op.drop_index("ix_messages_status_expires", table_name="messages")
    for name, where in (
        ("ix_messages_pending_expiry", PENDING),
        ("ix_messages_in_flight_expiry", IN_FLIGHT),
    ):
        op.create_index(
            name, "messages", ["expires_at"], sqlite_where=where, postgresql_where=where
        )


def downgrade() -> None:
    op.drop_index("ix_messages_in_flight_expiry", table_name="messages")
    op.drop_index("ix_messages_pending_expiry", table_name="messages")
    op.create_index("ix_messages_status_expires", "messages", ["status", "expires_at"])
    op.drop_index("ix_receipts_waiting", table_name="receipts")
    op.drop_index("ix_hlr_lookups_due", table_name="hlr_lookups")
    op.create_index("ix_hlr_lookups_due", "hlr_lookups", ["due_at"])
    op.drop_index("ix_dispatch_jobs_claim", table_name="dispatch_jobs")
    op.create_index("ix_dispatch_jobs_claim", "dispatch_jobs", ["supplier_id", "due_at"])
