from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, Money, UTCDateTime


class Price(Base):
    """The unit price of one message part of a type, in a tariff, to a country."""

    __tablename__ = "prices"
    __table_args__ = (UniqueConstraint("type", "tariff", "country"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(8))  # sms, viber, hlr
    tariff: Mapped[int] = mapped_column(Integer)
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    mcc: Mapped[str] = mapped_column(String(3))
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))


class LedgerEntry(Base):
    """Every balance movement, so a balance can always be explained."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)  # negative: a charge; positive: a top-up
    reason: Mapped[str] = mapped_column(String(32))  # charge, refund, top_up, adjustment
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
