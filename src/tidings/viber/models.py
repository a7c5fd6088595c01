from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class ViberContent(Base):
    """What a Viber message carries beyond the common columns, and its SMS alternative.

    The alpha name is the message's `originator`, the text its `body`, the recipient's
    `external_id` its `reference`, and the Viber TTL its `expires_at`.
    """

    __tablename__ = "viber_messages"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    img: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    caption: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    is_promotional: Mapped[bool] = mapped_column(Boolean, default=False)
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    # The SMS sent when Viber cannot deliver (all three set, or none).
    sms_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    sms_originator: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sms_validity_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The SMS message created for the fallback, once it is.
    fallback_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)


class ViberSender(Base):
    """An alpha name a client may send Viber messages from (registered with Viber first)."""

    __tablename__ = "viber_senders"
    __table_args__ = (UniqueConstraint("client_id", "alpha_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    alpha_name: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
