from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tidings.db.base import Base, BigId, UTCDateTime


class Views(DeclarativeBase):
    """Read-only views: their own metadata, so nothing creates, truncates or writes them."""


class DispatchJob(Views):
    """A message still to be handed to its supplier, as the view `dispatch_jobs` shows it.

    The job is columns of the message row (`due_at` set while it waits; migration 0016),
    not a row of its own: inserted with the message, leased by a HOT update of it, gone with
    the update that records it sent or final. `DispatchRepository` writes those columns;
    this view is for reading them (the console, metrics, tests), by the old names. A worker
    that dies holding a job only holds its lease: once `locked_until` passes, another worker
    takes it over.
    """

    __tablename__ = "dispatch_jobs"

    message_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    supplier_id: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Receipt(Base):
    """A delivery receipt from a supplier, kept whether or not it matched a message yet.

    A fast supplier can report before we have stored the id it gave us; such a receipt stays
    unapplied (message_id NULL) until the submit answer is recorded, then it is applied.
    """

    __tablename__ = "receipts"
    __table_args__ = (
        Index("ix_receipts_supplier_ref", "supplier_id", "supplier_message_id"),
        Index("ix_receipts_unmatched", "message_id", "received_at"),
        # The receipts still waiting for their message, in the catch-up matcher's order:
        # partial, so the millions of matched receipts are not walked (no statistics needed).
        Index(
            "ix_receipts_waiting",
            "id",
            sqlite_where=text("message_id IS NULL"),
            postgresql_where=text("message_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    supplier_message_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)


class MessagePart(Base):
    """One part of a long message as a supplier took it (its own id), with what it reported.

    Written with the submit answer (SMPP: each part's submit_sm_resp id), so a receipt for
    any part settles the message after a restart too: delivered once every part is
    delivered, failed as soon as one part fails (seed 004: total_sms_parts and
    delivered_sms_parts). Single-part messages have no rows.
    """

    __tablename__ = "message_parts"
    __table_args__ = (Index("ix_message_parts_supplier_ref", "supplier_id", "part_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    part_id: Mapped[str] = mapped_column(String(100))
    seqnum: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the last reported


class SupplierRateBucket(Base):
    """A supplier's throughput limit, shared by every process that sends to it.

    One row per rate-limited supplier: the moment (integer microseconds since the epoch, so
    the arithmetic is exact and the same SQL on SQLite and PostgreSQL) up to which its rate
    is already booked. A lane books each batch with one upsert that pushes the moment on by
    the batch's share of the rate and learns when the batch may go (delivery/ratelimit.py).
    """

    __tablename__ = "supplier_rate_buckets"

    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), primary_key=True)
    booked_until_us: Mapped[int] = mapped_column(BigInteger)
