from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class SmppReceipt(Base):
    """A receipt owed to an SMPP client: written with the final status, sent on a bind.

    ``sent_at`` stays NULL until the client answered the deliver_sm with ESME_ROK, so a
    receipt for a client with no receiver bind waits here until it binds again.
    """

    __tablename__ = "smpp_receipts"
    __table_args__ = (Index("ix_smpp_receipts_pending", "client_id", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SmppReceiptRequest(Base):
    """What receipts an SMPP message asked for, when not the usual final one.

    ``registered_delivery & 3`` of the submit_sm: 0 none, 2 on failure only, 3 on success only
    (SMPP 5.0). A message without a row asked for 1: a receipt for its final status, whatever
    it is. Written with the message, in the acceptance transaction.
    """

    __tablename__ = "smpp_receipt_requests"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    registered_delivery: Mapped[int] = mapped_column(Integer)
