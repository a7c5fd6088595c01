from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class Number(Base):
    """A virtual number or short code a client owns, optionally only for one keyword.

    ``keyword`` is "" for the whole number: a shared short code has one row per keyword
    (each its own client) and may have one "" row that takes what no keyword matched.
    ``supplier_id``, when set, names the supplier the number is hosted at: only inbound
    messages from that supplier match it.
    """

    __tablename__ = "numbers"
    __table_args__ = (Index("uq_numbers_number_keyword", "number", "keyword", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    number: Mapped[str] = mapped_column(String(20))
    keyword: Mapped[str] = mapped_column(String(32), default="")
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboundMessage(Base):
    """One inbound message, whole (parts of a long one are joined before it is written).

    ``client_id`` None is the ``unrouted`` owner: no number matched; operators see it and
    can assign the number later, nothing is dropped. The unique index on (supplier,
    supplier message id) makes a message posted or delivered twice one row.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index(
            "uq_inbound_messages_supplier_ref", "supplier_id", "supplier_message_id", unique=True
        ),
        # GET /rest/sms/inbound pages a client's messages by id.
        Index("ix_inbound_messages_client", "client_id", "id"),
        # SMPP deliver_sm carry no id: a resend of the same PDU is found by its fingerprint.
        Index("ix_inbound_messages_fingerprint", "supplier_id", "fingerprint"),
        Index("ix_inbound_messages_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), nullable=True)
    supplier_message_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sender: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(32))
    keyword: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the one matched
    text: Mapped[str] = mapped_column(Text)
    parts: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboundPart(Base):
    """One acknowledged part of a long inbound message whose other parts have not all come.

    Committed before its deliver_sm_resp goes out; the part that completes the message
    deletes its siblings in the transaction that writes the message. ``units`` is the part's
    user data without its header (``text.read_part``), ``alphabet`` how to decode it.
    """

    __tablename__ = "inbound_parts"
    __table_args__ = (Index("ix_inbound_parts_assembly", "supplier_id", "assembly", "seqnum"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    assembly: Mapped[str] = mapped_column(String(120))
    seqnum: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(32))
    units: Mapped[bytes] = mapped_column(LargeBinary)
    alphabet: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
