"""The exports table, and the messages index an export's query walks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime
from tidings.messages.models import Message

PENDING = "pending"  # waiting for a worker (also: released after a failed attempt)
BUILDING = "building"  # a worker holds the lease and is writing the files
READY = "ready"  # the files are there (`row_count` may be 0: an empty export)
FAILED = "failed"  # every attempt failed; kept (and counted) until deleted or expired


class Export(Base):
    """One requested statistics export: its filter, its state and, once built, its files.

    The files live in the export storage under `key`, one per format; `sizes` maps each
    built format to its size in bytes.
    """

    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_state_created", "state", "created_at"),
        Index("ix_exports_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    state: Mapped[str] = mapped_column(String(12))
    # The normalised filter (`ExportFilter.to_json`), as the worker reads it back.
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The builder holding the export (a token per claim) and until when; a pending export
    # with `locked_until` in the future waits for a retry.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    row_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sizes: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ExportFile(Base):
    """One file of an export, kept in the database so that every api process can serve it
    (exports/dbstorage.py). Written in chunks while `complete` is false (invisible to
    readers); the newest complete file of a (key, format) is the one served. No foreign key
    to `exports`: files are deleted before their export's row, and the purge sweeps files no
    export owns, as it does on disk."""

    __tablename__ = "export_files"
    __table_args__ = (Index("ix_export_files_key_format", "key", "format"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(8))
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    # Touched by every chunk written: the purge takes an unfinished file untouched for an
    # hour for a dead builder's.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExportFileChunk(Base):
    """A piece of an export file, in order (`seq` from 0), of at most `CHUNK_BYTES`."""

    __tablename__ = "export_file_chunks"

    file_id: Mapped[int] = mapped_column(
        ForeignKey("export_files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# An export reads one client's messages in a time_in window, in time_in order: this index
# serves both the filter and the order (on SQLite the rowid, our id, is in every index).
# Declared here, beside the query that needs it, so that the metadata matches migration 0002.
MESSAGES_BY_CLIENT_TIME = Index(
    "ix_messages_client_time_in", Message.client_id, Message.time_in, Message.id
)
