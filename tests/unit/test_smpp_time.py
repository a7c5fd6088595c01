"""SMPP time fields: absolute times in any quarter-hour zone, relative times, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.smpp.smpptime import (
    SmppTimeError,
    format_absolute,
    format_relative,
    parse_smpp_time,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

instants = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
).map(lambda at: at.replace(microsecond=at.microsecond // 100_000 * 100_000))


def test_the_specs_examples() -> None:
    # SMPP 3.4 §7.1.1: local time 2026-11-24 12:30:05.3, 8 quarter hours (2 h) ahead of UTC.
    assert parse_smpp_time("261124123005308+", NOW) == datetime(
        2026, 11, 24, 10, 30, 5, 300_000, tzinfo=UTC
    )
    assert parse_smpp_time("261124083005004-", NOW) == datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    assert parse_smpp_time("000002030000000R", NOW) == NOW + timedelta(days=2, hours=3)
    assert parse_smpp_time("", NOW) is None


def test_relative_fields_are_counts_and_months_follow_the_calendar() -> None:
    assert parse_smpp_time("000000720000000R", NOW) == NOW + timedelta(hours=72)
    assert parse_smpp_time("000000009999000R", NOW) == NOW + timedelta(minutes=99, seconds=99)
    jan31 = datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_smpp_time("000100000000000R", jan31) == datetime(2027, 2, 28, tzinfo=UTC)
    assert parse_smpp_time("010000000000000R", jan31) == datetime(2028, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2611241230053",  # short
        "261124123005308+0",  # long
        "26112412300530 +",
        "261124123005308X",
        "261324123005300+",  # month 13
        "261131123005300+",  # 31 November
        "261124243005300+",  # 24 h
        "261124123005349+",  # 49 quarter hours
        "२६११२४१२३००५३०८+",  # digits, but not ASCII ones
    ],
)
def test_malformed_times(text: str) -> None:
    with pytest.raises(SmppTimeError):
        parse_smpp_time(text, NOW)


@given(instants, st.integers(min_value=-48, max_value=48))
def test_absolute_round_trip_in_any_zone(at: datetime, quarters: int) -> None:
    text = format_absolute(at, quarters)
    assert len(text) == 16 and text[-1] in "+-"
    assert parse_smpp_time(text, NOW) == at


@given(st.integers(min_value=0, max_value=100 * 86_400 - 1))
def test_relative_round_trip(seconds: int) -> None:
    text = format_relative(timedelta(seconds=seconds))
    assert len(text) == 16 and text.endswith("R")
    assert parse_smpp_time(text, NOW) == NOW + timedelta(seconds=seconds)


@given(st.text(max_size=20))
def test_anything_parses_or_raises_smpp_time_error(text: str) -> None:
    try:
        result = parse_smpp_time(text, NOW)
    except SmppTimeError:
        return
    assert result is None or result.tzinfo is not None


@given(st.text(alphabet="0123456789+-R", min_size=16, max_size=16))
def test_sixteen_characters_of_the_alphabet(text: str) -> None:
    try:
        result = parse_smpp_time(text, NOW)
    except SmppTimeError:
        return
    assert result is not None and result.utcoffset() == timedelta(0)
