"""SMPP 3.4 time fields (§7.1.1): ``schedule_delivery_time``, ``validity_period``, dates.

A time is 16 characters, ``YYMMDDhhmmsstnnp``, or empty (NULL: "not given"):

- absolute, ``p`` is ``+`` or ``-``: a local time ``nn`` quarter hours ahead of (``+``) or
  behind (``-``) UTC, ``t`` tenths of a second; years are 2000 + ``YY``.
- relative, ``p`` is ``R``: ``YY`` years, ``MM`` months, ``DD`` days, ``hh:mm:ss`` from now
  (``tnn`` is ``000``). Fields are read as counts, not clock values: ``000003000000000R``
  is three days, ``000000720000000R`` (seen in the wild) 72 hours.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["SmppTimeError", "format_absolute", "format_relative", "parse_smpp_time"]


class SmppTimeError(ValueError):
    """A time field that is neither empty nor a valid SMPP time."""


def parse_smpp_time(text: str, now: datetime) -> datetime | None:
    """The UTC instant a time field names (relative ones from ``now``); None when empty."""
    if text == "":
        return None
    if len(text) != 16 or not text[:15].isdigit() or not text[:15].isascii():
        raise SmppTimeError(f"SMPP time {text!r} is not YYMMDDhhmmsstnnp")
    yy, mo, dd, hh, mi, ss = (int(text[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, sign = int(text[12]), int(text[13:15]), text[15]
    if sign == "R":
        return _add_months(now, yy * 12 + mo) + timedelta(days=dd, hours=hh, minutes=mi, seconds=ss)
    if sign not in "+-":
        raise SmppTimeError(f"SMPP time {text!r} ends in neither +, - nor R")
    if quarters > 48:
        raise SmppTimeError(f"SMPP time {text!r}: UTC offset over 12 hours")
    offset = timedelta(minutes=15 * quarters) * (1 if sign == "+" else -1)
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, timezone(offset))
    except ValueError as error:
        raise SmppTimeError(f"SMPP time {text!r}: {error}") from None
    return local.astimezone(UTC)


def _add_months(at: datetime, months: int) -> datetime:
    if not months:
        return at
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def format_absolute(at: datetime, quarters: int = 0) -> str:
    """``at`` as an absolute SMPP time, written in the zone ``quarters`` × 15 min from UTC."""
    local = at.astimezone(timezone(timedelta(minutes=15 * quarters)))
    sign = "-" if quarters < 0 else "+"
    tenths = local.microsecond // 100_000
    return f"{local:%y%m%d%H%M%S}{tenths}{abs(quarters):02d}{sign}"


def format_relative(span: timedelta) -> str:
    """A relative SMPP time of whole seconds, in days/hours/minutes/seconds (< 100 days)."""
    seconds = int(span.total_seconds())
    if not 0 <= seconds < 100 * 86_400:
        raise SmppTimeError(f"relative SMPP time {span} is out of range")
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
