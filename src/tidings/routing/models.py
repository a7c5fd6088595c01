from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, Money, UTCDateTime


class Supplier(Base):
    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # simulator, http, smpp, viber_simulator
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Messages per second this supplier accepts from us; None: no limit.
    throughput: Mapped[float | None] = mapped_column(Float, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Credentials the supplier uses to post delivery receipts to /api/dlr (seeds 001/002).
    dlr_login: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    dlr_password_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Route(Base):
    """Sends messages of a type to a supplier: by number prefix, else country, else default.

    The most specific matching route wins (prefix, longest first; then country; then a
    default route with neither); among equally specific routes, the highest priority.
    """

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    prefix: Mapped[str | None] = mapped_column(String(15), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "priority": the highest priority first; "lcr": the cheapest for the number's network
    # first (docs/routing.md). Routes of one specificity (same prefix and country) form a
    # group; the group is least-cost when any of its routes says so.
    strategy: Mapped[str] = mapped_column(String(8), default="priority")
    # The network comes from a recent HLR result of the number, when there is one.
    hlr_routing: Mapped[bool] = mapped_column(Boolean, default=False)
    # A supplier at its throughput limit passes messages on to the next candidate.
    overflow: Mapped[bool] = mapped_column(Boolean, default=False)


class SupplierHealth(Base):
    """A supplier's circuit breaker, shared by every worker process (docs/routing.md).

    closed: in routing. open: out of routing until `probe_at`; then one worker claims the
    probe (moving `probe_at` on by the cool-down, so others do not probe too) and sends one
    message: success closes the breaker, failure keeps it open for another cool-down.
    """

    __tablename__ = "supplier_health"

    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))  # closed, open
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started: Mapped[datetime] = mapped_column(UTCDateTime)
    window_total: Mapped[int] = mapped_column(Integer, default=0)
    window_failed: Mapped[int] = mapped_column(Integer, default=0)
    probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SupplierCost(Base):
    """What a supplier charges us for one part to a country, or one network (MCC, MCC+MNC).

    mcc and mnc are "" when the row is for the whole country (or the whole MCC): the most
    specific row for a number wins.
    """

    __tablename__ = "supplier_costs"
    __table_args__ = (
        UniqueConstraint("supplier_id", "type", "country", "mcc", "mnc", name="uq_supplier_costs"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    type: Mapped[str] = mapped_column(String(8))
    country: Mapped[str] = mapped_column(String(2))
    mcc: Mapped[str] = mapped_column(String(3), default="")
    mnc: Mapped[str] = mapped_column(String(3), default="")
    cost: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))


class FxRate(Base):
    """1 `base` = `rate` `quote` (decimal text: exact, and no float anywhere)."""

    __tablename__ = "fx_rates"

    base: Mapped[str] = mapped_column(String(3), primary_key=True)
    quote: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
