"""The one table of HLR lookups: the request, its result, and its work-queue state.

A lookup is its own work item: `due_at` is set while a provider still has to be asked (or
asked again), and cleared when the result is final. Accepting writes the row, so the
request and its work item are stored in one statement.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, Money, UTCDateTime


class HlrLookup(Base):
    __tablename__ = "hlr_lookups"
    __table_args__ = (
        UniqueConstraint("client_id", "reference", name="uq_hlr_lookups_client_reference"),
        # The claim's queue: only lookups still to be asked, per provider in claim order.
        # `due_at <= $1` implies `due_at IS NOT NULL`, so even a generic plan uses it.
        Index(
            "ix_hlr_lookups_due",
            "provider_id",
            "due_at",
            "id",
            sqlite_where=text("due_at IS NOT NULL"),
            postgresql_where=text("due_at IS NOT NULL"),
        ),
        Index("ix_hlr_lookups_client_created", "client_id", "created_at"),
        # HLR routing: the latest result of a number (docs/routing.md).
        Index("ix_hlr_lookups_msisdn", "msisdn", "status_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    msisdn: Mapped[str] = mapped_column(String(15))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2 of the number
    reference: Mapped[str] = mapped_column(String(32))
    tariff: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(8), default="api")
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)

    # sent (asked, no answer yet), active, absent, unknown, failed
    status: Mapped[str] = mapped_column(String(8))
    network: Mapped[str | None] = mapped_column(String(6), nullable=True)  # MCCMNC
    ported: Mapped[bool] = mapped_column(Boolean, default=False)
    roaming: Mapped[bool] = mapped_column(Boolean, default=False)

    # The HLR supplier (a `suppliers` row of kind hlr_*) and the id it gave the query.
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), nullable=True)
    provider_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Work queue: due while a provider must be asked; a claim is a lease until locked_until.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
