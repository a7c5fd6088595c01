"""The shared column types' per-value processors, and MessageRecord's match with its table."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from tidings.db.base import UTCDateTime
from tidings.messages.changes import MessageRecord
from tidings.messages.models import Message

SQLITE = sqlite.dialect()
POSTGRES = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 2), max_value=datetime(9998, 12, 30), timezones=offsets
)


def _bind(dialect: object, value: datetime | None) -> object:
    return UTCDateTime().bind_processor(dialect)(value)  # type: ignore[arg-type]


def _result(value: object) -> datetime | None:
    processor = UTCDateTime().result_processor(SQLITE, None)
    assert processor is not None
    return processor(value)  # type: ignore[no-any-return]


@given(moments)
def test_sqlite_text_round_trips_to_the_same_instant_in_utc(moment: datetime) -> None:
    text = _bind(SQLITE, moment)
    assert isinstance(text, str) and len(text) == 26
    back = _result(text)
    assert back == moment and back is not None and back.tzinfo is UTC
    # The generic path (literal values, other callers) agrees with the fast one.
    assert UTCDateTime().process_bind_param(moment, SQLITE) == text
    assert UTCDateTime().process_result_value(text, SQLITE) == back


@given(moments, moments)
def test_sqlite_text_order_is_time_order(first: datetime, second: datetime) -> None:
    a, b = _bind(SQLITE, first), _bind(SQLITE, second)
    assert isinstance(a, str) and isinstance(b, str)
    assert (a < b) == (first < second)


def test_stored_form_is_the_sqlalchemy_sqlite_form() -> None:
    moment = datetime(2026, 11, 24, 12, 5, 7, 42, tzinfo=UTC)
    assert _bind(SQLITE, moment) == "2026-11-24 12:05:07.000042"
    eastern = moment.astimezone(timezone(timedelta(hours=3)))
    assert _bind(SQLITE, eastern) == "2026-11-24 12:05:07.000042"


def test_older_text_forms_still_read() -> None:
    assert _result("2026-11-24 12:05:07") == datetime(2026, 11, 24, 12, 5, 7, tzinfo=UTC)
    assert _result("2026-11-24T15:05:07+03:00") == datetime(2026, 11, 24, 12, 5, 7, tzinfo=UTC)
    assert _result(None) is None


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=["sqlite", "postgres"])
def test_naive_datetimes_are_refused(dialect: object) -> None:
    with pytest.raises(ValueError, match="naive"):
        _bind(dialect, datetime(2026, 11, 24, 12, 0))
    assert _bind(dialect, None) is None


def test_postgres_gets_aware_utc_datetimes() -> None:
    moment = datetime(2026, 11, 24, 15, 0, tzinfo=timezone(timedelta(hours=3)))
    bound = _bind(POSTGRES, moment)
    assert bound == moment and isinstance(bound, datetime) and bound.tzinfo is UTC


def test_message_record_has_exactly_the_message_columns() -> None:
    fields = {field.name for field in dataclasses.fields(MessageRecord)}
    assert fields == {column.key for column in Message.__table__.columns}
    nullable = {
        c.key
        for c in Message.__table__.columns
        if (c.nullable or c.server_default is not None) and not c.primary_key
    }
    defaulted = {
        f.name for f in dataclasses.fields(MessageRecord) if f.default is not dataclasses.MISSING
    }
    assert defaulted == nullable
