from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class WebhookDelivery(Base):
    """One request to send to a client, rendered when the event happened.

    Written in the transaction that changed the status, so a crash can't lose it; retried
    from the database on the schedule it was created with.
    """

    # PostgreSQL: fillfactor 50 (migration 0016), room in each page for the lease's new row
    # version, so that the lease is a HOT update (it changes no indexed column).
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The claim's queue: only pending rows, in the order they are claimed. Partial, so
        # the millions of finished deliveries are not in it and the claim walks it by index
        # order whatever the planner knows (no statistics needed). A lease moves
        # `next_attempt_at` to the lease's end, so rows in flight sit behind the due ones.
        Index(
            "ix_webhook_deliveries_ready",
            "next_attempt_at",
            "id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_webhook_deliveries_message", "message_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The Standard Webhooks ``webhook-id``: "msg_" + a UUID made with the row, the same on
    # every retry and unique across gateways (receivers dedupe on it). None on rows made
    # before it existed; those send "msg_" + the row id.
    webhook_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    event: Mapped[str] = mapped_column(String(32))  # message.status, export.ready, hlr.result
    url: Mapped[str] = mapped_column(String(2000))
    format: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Seconds to wait after each failed attempt; its length is the number of retries.
    schedule: Mapped[list[Any]] = mapped_column(JSON)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The answer of a first attempt that succeeded, which has no `webhook_attempts` row
    # (most deliveries: one row fewer each); None otherwise.
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(String(500), nullable=True)


class WebhookAttempt(Base):
    """The delivery log: every attempt, kept after the delivery succeeds or is dropped."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(String(500), nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
