"""The opt-out list and each client's confirmation replies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class OptOut(Base):
    """A number that asked a client to stop: nothing of that client's goes to it (SMS or
    Viber) until it is removed (START, the API, the CLI)."""

    __tablename__ = "optouts"
    # The enforcement check looks up (client, numbers of a request) and the lists page by
    # msisdn: one unique index serves both, and makes an insert of a listed number a no-op.
    __table_args__ = (Index("uq_optouts_client_msisdn", "client_id", "msisdn", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    # Normalised as acceptance normalises a destination (digits, country code, no '+').
    msisdn: Mapped[str] = mapped_column(String(20))
    # keyword (an inbound STOP), api, cli, import, console
    source: Mapped[str] = mapped_column(String(16))
    # The inbound text that opted the number out, for the record (keyword source only).
    keyword: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OptOutSettings(Base):
    """A client's confirmation replies: sent back to a number that opted out or back in.

    A row of its own rather than columns on `clients`, so the opt-out domain owns its
    schema; no row (or NULL) means no reply."""

    __tablename__ = "optout_settings"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    optout_confirmation: Mapped[str | None] = mapped_column(Text, nullable=True)
    optin_confirmation: Mapped[str | None] = mapped_column(Text, nullable=True)
