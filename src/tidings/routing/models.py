from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


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
