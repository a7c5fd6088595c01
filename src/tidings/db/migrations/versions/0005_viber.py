"""viber: Viber content and SMS alternatives, registered alpha names, fallback links

Revision ID: 0005_viber
Revises: 0004_hlr
Create Date: 2026-11-24 09:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision: str = "0005_viber"
down_revision: str | None = "0004_hlr"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A fallback SMS points to the Viber message it stands in for.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_parent_id_messages"), "messages", ["parent_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_messages_parent_id"), ["parent_id"], unique=False)
    op.create_table(
        "viber_messages",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("img", sa.String(length=2000), nullable=True),
        sa.Column("caption", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=2000), nullable=True),
        sa.Column("is_promotional", sa.Boolean(), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("sms_text", sa.Text(), nullable=True),
        sa.Column("sms_originator", sa.String(length=32), nullable=True),
        sa.Column("sms_validity_seconds", sa.Integer(), nullable=True),
        sa.Column("fallback_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_viber_messages_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["fallback_id"], ["messages.id"], name=op.f("fk_viber_messages_fallback_id_messages")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_viber_messages")),
    )
    op.create_table(
        "viber_senders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("alpha_name", sa.String(length=32), nullable=False),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_viber_senders_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viber_senders")),
        sa.UniqueConstraint("client_id", "alpha_name", name=op.f("uq_viber_senders_client_id")),
    )
    op.create_index(
        op.f("ix_viber_senders_client_id"), "viber_senders", ["client_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_viber_senders_client_id"), table_name="viber_senders")
    op.drop_table("viber_senders")
    op.drop_table("viber_messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_parent_id"))
        batch_op.drop_constraint(batch_op.f("fk_messages_parent_id_messages"), type_="foreignkey")
        batch_op.drop_column("parent_id")
