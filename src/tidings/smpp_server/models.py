from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
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
    # None for a part of a long message that never completed (``part_id`` tells which).
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id"), index=True, nullable=True
    )
    # The message_id the part's own submit_sm_resp carried (None: the message's id).
    reply_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    part_id: Mapped[int | None] = mapped_column(
        ForeignKey("smpp_inbound_parts.id", name="fk_smpp_receipts_part_id"), nullable=True
    )
    # An inbound message for the client (a deliver_sm that is no receipt) rides the same
    # queue: then ``status`` is "inbound" and ``message_id`` None (docs/inbound.md).
    inbound_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
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


class SmppInboundPart(Base):
    """One answered part of a long message an SMPP client submitted.

    Written (and committed) before its submit_sm_resp goes out, so a part the client saw
    accepted survives a restart; the server rebuilds its incomplete messages from the rows
    with neither ``message_id`` nor ``failed_at``. ``assembly`` names the message the part
    belongs to (source, destination, reference, total); ``pdu`` is the submit_sm / data_sm
    as received (cleared once the message is whole); ``reply_id`` is the message_id its
    submit_sm_resp carried, which its receipt carries back.
    """

    __tablename__ = "smpp_inbound_parts"
    __table_args__ = (
        Index("ix_smpp_inbound_parts_reply_id", "reply_id", unique=True),
        Index("ix_smpp_inbound_parts_message_id", "message_id"),
        Index("ix_smpp_inbound_parts_open", "message_id", "failed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    assembly: Mapped[str] = mapped_column(String(120))
    seqnum: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    reply_id: Mapped[str] = mapped_column(String(40))
    registered_delivery: Mapped[int] = mapped_column(Integer)
    pdu: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
