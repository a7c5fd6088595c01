"""The declarative base and the column types every model shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

# Money is stored as an integer count of micro-units (1e-6 EUR): exact on every database,
# and `balance = balance - :amount` stays exact arithmetic in SQL (SQLite has no DECIMAL).
MONEY_SCALE = Decimal("0.000001")
_MICROS = 1_000_000


def to_micros(value: Decimal) -> int:
    quantized = value.quantize(MONEY_SCALE)
    if quantized != value:
        raise ValueError(f"{value} has more precision than 6 decimal places")
    return int(quantized * _MICROS)


def from_micros(value: int) -> Decimal:
    return (Decimal(value) / _MICROS).quantize(MONEY_SCALE)


class Money(TypeDecorator[Decimal]):
    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(Decimal(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_micros(int(value))


# Message and task ids (and the columns that hold them) are 64-bit, time-ordered numbers
# (db/ids.py). On SQLite every INTEGER is 64-bit already, and a primary key must be declared
# INTEGER exactly to be the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite too (which stores naive).

    On SQLite the value is stored as fixed-width ISO text, "YYYY-MM-DD HH:MM:SS.ffffff" (the
    form SQLAlchemy's own SQLite DATETIME writes, so text order is time order), formatted
    and parsed by datetime's C methods: SQLAlchemy's generic DATETIME processors cost a tenth
    of the CPU of a bulk insert.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(26))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_text(value)
        return _utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or isinstance(value, str):
            return _from_sqlite_text(value)
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)

    # The processors SQLAlchemy calls per value: chosen once per dialect, without the
    # TypeDecorator's generic wrapper (millions of calls on the status-change path).
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        return _sqlite_text if dialect.name == "sqlite" else _utc

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _from_sqlite_text
        return super().result_processor(dialect, coltype)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _sqlite_text(value: datetime | None) -> str | None:
    # isoformat of a UTC time ends in "+00:00": the first 26 characters are the stored form.
    if value is not None and value.tzinfo is UTC:  # nearly always: one C call
        return value.isoformat(" ", "microseconds")[:26]
    moment = _utc(value)
    return None if moment is None else moment.isoformat(" ", "microseconds")[:26]


def _from_sqlite_text(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
