from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, Money, UTCDateTime


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    tariff: Mapped[int] = mapped_column(Integer, default=0)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Delivery-report webhooks: which seed's payload, which retry schedule (a preset name or
    # comma-separated seconds), the HMAC secret every request is signed with, and the
    # credentials to put in the request for receivers that want them (the Smartswitch format).
    webhook_format: Mapped[str] = mapped_column(String(16), default="ketchup")
    retry_schedule: Mapped[str] = mapped_column(String(200), default="ketchup")
    webhook_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    webhook_login: Mapped[str | None] = mapped_column(String(100), nullable=True)
    webhook_password: Mapped[str | None] = mapped_column(String(200), nullable=True)

    # HTTP Basic credentials for the delivery-report query API (seed 000).
    dr_login: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    dr_password_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    # SMPP server binds (docs/smpp-server.md): system_id and the password's SHA-256, how many
    # binds at once, and submit_sm per second over all of them (None: no limit).
    smpp_system_id: Mapped[str | None] = mapped_column(String(16), unique=True, nullable=True)
    smpp_password_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    smpp_max_binds: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    smpp_throughput: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What data_coding 0 (the "SMSC default alphabet") means for this client's submits:
    # gsm7 (unpacked), gsm7-packed, latin1 or ascii, as Kannel's alt-charset.
    smpp_charset: Mapped[str] = mapped_column(String(16), default="gsm7", server_default="gsm7")

    # Where inbound messages (MO) to this client's numbers are POSTed (docs/inbound.md).
    mo_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)


class ApiKey(Base):
    """An API key, stored as its SHA-256 only: a leaked table leaks no usable key."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "live" or "test": test keys validate like live ones but store, send and charge nothing.
    kind: Mapped[str] = mapped_column(String(8))
    # The first characters, so operators can tell keys apart in listings.
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
