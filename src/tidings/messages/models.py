from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, BigId, Money, UTCDateTime
from tidings.messages.status import IN_FLIGHT_STATUSES, PENDING_STATUSES


def status_predicate(statuses: frozenset[str]) -> str:
    """`status IN ('a', 'b')`, sorted: the form the sweeper's queries and the partial indexes
    share (SQLite uses a partial index only for a WHERE term written exactly like its own)."""
    if not all(s.isidentifier() for s in statuses):  # our own Status values, never input
        raise ValueError(f"not a status: {sorted(statuses)}")
    return "status IN (" + ", ".join(f"'{s}'" for s in sorted(statuses)) + ")"


PENDING_PREDICATE = status_predicate(frozenset(PENDING_STATUSES))
IN_FLIGHT_PREDICATE = status_predicate(frozenset(IN_FLIGHT_STATUSES))


class Task(Base):
    """A bulk request (`phones` or `individual`): the unit a client asks statistics for."""

    __tablename__ = "tasks"

    # Drawn from the messages' ids (db/ids.py): a number names a message or a task, not both.
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    destination: Mapped[str] = mapped_column(String(16))  # phones, individual
    originator: Mapped[str | None] = mapped_column(String(32), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    validity_hours: Mapped[int] = mapped_column(Integer)
    total_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Message(Base):
    """One message. On PostgreSQL the table is partitioned by week of its id (time-ordered,
    db/ids.py; docs/architecture.md, "Partitions and retention"): there the reference is
    unique per partition (an index of each partition, db/partitions.py), and no foreign key
    points at the table, so that an expired week can be dropped whole."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("client_id", "reference"),
        # Partial (migration 0016), as is `ix_messages_parent_id`: a row version without the
        # value (a message not sent yet; any but an SMS fallback leg) writes no entry, and
        # every look-up (`= ANY`, `=`) implies the column is not null.
        Index(
            "ix_messages_supplier_ref",
            "supplier_id",
            "supplier_message_id",
            sqlite_where=text("supplier_message_id IS NOT NULL"),
            postgresql_where=text("supplier_message_id IS NOT NULL"),
        ),
        Index(
            "ix_messages_parent_id",
            "parent_id",
            sqlite_where=text("parent_id IS NOT NULL"),
            postgresql_where=text("parent_id IS NOT NULL"),
        ),
        # The sweeper's two queues, by validity: messages not sent yet, messages sent and
        # awaiting their final report. Partial, so the millions of final messages are not in
        # them and the sweeper reads the first expired ones in index order, whatever the
        # planner knows (the queries spell these statuses as constants: status_predicate).
        Index(
            "ix_messages_pending_expiry",
            "expires_at",
            sqlite_where=text(PENDING_PREDICATE),
            postgresql_where=text(PENDING_PREDICATE),
        ),
        Index(
            "ix_messages_in_flight_expiry",
            "expires_at",
            sqlite_where=text(IN_FLIGHT_PREDICATE),
            postgresql_where=text(IN_FLIGHT_PREDICATE),
        ),
        # The dispatch queue (docs/architecture.md, "The path of a message"): the messages
        # still to hand to a supplier, in each supplier's claim order. Partial: a message
        # leaves it with the update that records it sent (or final), so nothing is deleted,
        # and the claim walks the first due rows whatever the planner knows.
        Index(
            "ix_messages_dispatch",
            "supplier_id",
            "due_at",
            "id",
            sqlite_where=text("due_at IS NOT NULL"),
            postgresql_where=text("due_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), nullable=True, index=True)
    channel: Mapped[str] = mapped_column(String(8))  # sms, viber
    source: Mapped[str] = mapped_column(String(8))  # api, smpp, ...
    msisdn: Mapped[str] = mapped_column(String(15))
    country: Mapped[str] = mapped_column(String(2))
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    originator: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    encoding: Mapped[str] = mapped_column(String(8))
    parts: Mapped[int] = mapped_column(Integer)
    tariff: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)  # total for all parts
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    status_detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), nullable=True)
    supplier_message_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # What the supplier charges us for it (all parts), in cost_currency; None: no cost known.
    cost: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    cost_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    time_in: Mapped[datetime] = mapped_column(UTCDateTime)
    time_sent: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    time_dr: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Its dispatch job: set while the message waits to be handed to `supplier_id` (when it is
    # due), cleared by the update that records it sent or final. `locked_until` is a
    # worker's lease on it, `attempts` the hand-overs tried, `last_error` the last failure.
    # The lease changes no indexed column: a HOT update (PostgreSQL fillfactor 50).
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The message this one stands in for: an SMS sent because its Viber message failed.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    # The inbound message (inbound_messages.id) this one answers. No foreign key: adding one
    # to this big table would make SQLite copy it (docs/inbound.md, "Replies").
    reply_to: Mapped[int | None] = mapped_column(Integer, nullable=True)


class MessageEvent(Base):
    """One status transition after acceptance (acceptance itself is the message's time_in).

    On PostgreSQL partitioned like messages, by message_id (the same week bounds), with the
    primary key (message_id, id): a message's history is in its message's partition."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
