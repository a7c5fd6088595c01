"""Operator accounts and the console's stored secrets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class Operator(Base):
    """A person allowed into the console; the password is kept only as a scrypt hash."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # "scrypt$n$r$p$salt$hash" (base64 parts): the parameters travel with the hash, so they
    # can be raised later without invalidating existing passwords.
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConsoleSecret(Base):
    """A named secret the console generated for itself (the session signing key).

    Stored so that every API process on one database signs and checks the same cookies,
    and sessions survive a restart, without the operator having to configure one.
    """

    __tablename__ = "console_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
