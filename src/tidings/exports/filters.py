"""The filter of `POST /rest/stat/create`: seed 004's rules, turned into an `ExportFilter`.

Rules (docs/exports.md has the table):

* `null`, a missing field, an empty string and the string "null" all mean "not given".
* `message_id`, a non-empty array of at most 300 ids, overrides every other filter (they are
  then neither applied nor checked). An empty array, or a value that is not an array, is
  ignored, as the seed says; so is `msisdn` in that case.
* Otherwise the `time_in_from` / `time_in_to` window is required (error 86 without it).
* `operator_id` is ignored without `country_name`.

Each rule raises InvalidRequest with a `reason` that `api/client/errors.py` maps onto seed 004's
codes 80-86 (7 for the fields the seed gives no code of their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.api.client.parsing import parse_callback_url
from tidings.db.ids import MAX_ID
from tidings.errors import InvalidRequest
from tidings.exports.statuses import STATUS_FILTER
from tidings.numbering import CountryTable

MAX_MESSAGE_IDS = 300
MAX_MSISDNS = 1000
MAX_ORIGINATOR = 32
MAX_OPERATOR = 100
MAX_CLICKS = 999_999
MESSAGE_TYPES = ("sms", "hlr", "viber")
SOURCE_TYPES = ("api", "web", "smpp", "xml", "http", "json")
CLICK_COMPARISONS = ("<", ">", "=")

_MOMENT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hour>\d{2})"
    r"(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>[.,]\d{1,6})?)?)?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_DIGITS = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class ClickFilter:
    """`sl_clicks*`: checked, kept, and not applied: no client has short links yet."""

    comparison: str | None
    count: int | None


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which messages an export holds. Time windows are [from, until): `until` is exclusive.

    `message_ids`, when set, is the whole filter. Tuples are sorted, so equal filters compare
    and serialise equal.
    """

    message_ids: tuple[int, ...] | None = None
    time_in_from: datetime | None = None
    time_in_until: datetime | None = None
    msisdns: tuple[str, ...] | None = None
    originator: str | None = None
    source_type: str | None = None
    message_type: str | None = None
    time_sent_from: datetime | None = None
    time_sent_until: datetime | None = None
    country: str | None = None  # ISO 3166-1 alpha-2, found by the country's English name
    operator: str | None = None  # matched against the row's brand_name, ignoring case
    statuses: tuple[str, ...] | None = None  # stored statuses (may be empty: matches nothing)
    clicks: ClickFilter | None = None

    @property
    def by_ids(self) -> bool:
        return self.message_ids is not None

    def to_json(self) -> dict[str, Any]:
        """What the exports table keeps; `from_json` reads it back."""
        data: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, ClickFilter):
                value = {"comparison": value.comparison, "count": value.count}
            data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportFilter:
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in ("time_in_from", "time_in_until", "time_sent_from", "time_sent_until"):
                value = datetime.fromisoformat(value)
            elif name in ("message_ids", "msisdns", "statuses"):
                value = tuple(value)
            elif name == "clicks":
                value = ClickFilter(**value)
            values[name] = value
        return cls(**values)


def is_given(value: Any) -> bool:
    """The seed: "a string with null equals a parameter not given, and the other way round"."""
    if value is None:
        return False
    return not (isinstance(value, str) and value.strip().lower() in ("", "null"))


def parse_filter(payload: Any, countries: CountryTable) -> ExportFilter:
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object", reason="bad_payload")
    message_ids = _message_ids(payload.get("message_id"))
    if message_ids is not None:
        return ExportFilter(message_ids=message_ids)
    time_in_from, time_in_until = _window(payload, "time_in", required=True)
    time_sent_from, time_sent_until = _window(payload, "time_sent", required=False)
    country = _country(payload.get("country_name"), countries)
    return ExportFilter(
        time_in_from=time_in_from,
        time_in_until=time_in_until,
        msisdns=_msisdns(payload.get("msisdn")),
        originator=_originator(payload.get("originator")),
        source_type=_choice(payload.get("source_type"), SOURCE_TYPES, "source_type"),
        message_type=_choice(payload.get("message_type"), MESSAGE_TYPES, "message_type"),
        time_sent_from=time_sent_from,
        time_sent_until=time_sent_until,
        country=country,
        operator=_operator(payload.get("operator_id")) if country else None,
        statuses=_statuses(payload.get("status")),
        clicks=_clicks(payload),
    )


def parse_callback(payload: Any) -> str | None:
    """The request's `callback_url` (applies with `message_id` too); unusable means none."""
    if not isinstance(payload, dict) or not is_given(payload.get("callback_url")):
        return None
    return parse_callback_url(payload.get("callback_url"))


# --- Fields ---------------------------------------------------------------------------------


def _message_ids(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not value:
        return None  # "an empty array, or a key that is not an array: ignored"
    if len(value) > MAX_MESSAGE_IDS:
        raise InvalidRequest(
            f"message_id holds {len(value)} ids, at most {MAX_MESSAGE_IDS}",
            reason="bad_message_id",
            field="message_id",
        )
    ids: set[int] = set()
    for index, item in enumerate(value):
        number = _whole(item)
        if number is None or not 0 < number <= MAX_ID:
            raise InvalidRequest(
                f"message_id[{index}] is not a message id", reason="bad_message_id"
            )
        ids.add(number)
    return tuple(sorted(ids))


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_moment(value: Any, name: str) -> tuple[datetime, timedelta]:
    """A time and its precision: "2020-10-22 17:28:45" is that whole second.

    The seed's form, or ISO 8601 (`T`, fractions, `Z` or an offset); no offset means UTC; a
    date alone is that whole day.
    """
    text = value.strip() if isinstance(value, str) else None
    match = _MOMENT.fullmatch(text) if text else None
    if text is None or match is None:
        raise InvalidRequest(
            f"{name} must be a time like 2020-10-22 17:28:45, not {value!r}",
            reason="bad_time_frame",
            field=name,
        )
    try:
        moment = datetime.fromisoformat(text.replace(",", ".").replace("z", "Z"))
    except ValueError:
        raise InvalidRequest(
            f"{name} {value!r} is not a valid time", reason="bad_time_frame"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(f"{name} {value!r} is out of range", reason="bad_time_frame") from None
    if match["fraction"]:
        precision = timedelta(microseconds=1)
    elif match["second"]:
        precision = timedelta(seconds=1)
    elif match["minute"]:
        precision = timedelta(minutes=1)
    elif match["hour"]:
        precision = timedelta(hours=1)
    else:
        precision = timedelta(days=1)
    return moment, precision


def _window(
    payload: dict[str, Any], prefix: str, *, required: bool
) -> tuple[datetime | None, datetime | None]:
    """`{prefix}_from` and `{prefix}_to`, both inclusive, as [from, until)."""
    low_name, high_name = f"{prefix}_from", f"{prefix}_to"
    low_value, high_value = payload.get(low_name), payload.get(high_name)
    if required and not (is_given(low_value) and is_given(high_value)):
        raise InvalidRequest(
            f"give message_id, or both {low_name} and {high_name}",
            reason="bad_time_frame",
            field=low_name if not is_given(low_value) else high_name,
        )
    low = parse_moment(low_value, low_name)[0] if is_given(low_value) else None
    until = None
    if is_given(high_value):
        high, precision = parse_moment(high_value, high_name)
        try:
            until = high + precision
        except OverflowError:
            until = datetime.max.replace(tzinfo=UTC)
    if low is not None and until is not None and until <= low:
        raise InvalidRequest(f"{low_name} is after {high_name}", reason="bad_time_frame")
    return low, until


def _msisdns(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value:
        return None  # ignored, as for message_id
    if len(value) > MAX_MSISDNS:
        raise InvalidRequest(f"msisdn holds more than {MAX_MSISDNS} numbers", reason="invalid")
    numbers: set[str] = set()
    for index, item in enumerate(value):
        text = (
            str(item).strip() if isinstance(item, str | int) and not isinstance(item, bool) else ""
        )
        if text.startswith("+"):
            text = text[1:]
        elif text.startswith("00"):
            text = text[2:]
        if not (text.isascii() and _DIGITS.fullmatch(text)):
            raise InvalidRequest(f"msisdn[{index}] is not a phone number", reason="invalid")
        numbers.add(text)
    return tuple(sorted(numbers))


def _originator(value: Any) -> str | None:
    if not is_given(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    # NUL: PostgreSQL text cannot hold it, so the build's query would fail, not match nothing.
    if not isinstance(value, str) or len(value) > MAX_ORIGINATOR or "\x00" in value:
        raise InvalidRequest(
            f"originator must be text of at most {MAX_ORIGINATOR} characters", reason="invalid"
        )
    return value


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> str | None:
    if not is_given(value):
        return None
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in allowed:
        raise InvalidRequest(
            f"{name} must be one of {', '.join(allowed)}, not {value!r}",
            reason=f"bad_{name}",
            field=name,
        )
    return word


def _country(value: Any, countries: CountryTable) -> str | None:
    if not is_given(value):
        return None
    country = countries.by_name(value) if isinstance(value, str) else None
    if country is None:
        raise InvalidRequest(
            f"country_name {value!r} is not a country's English name",
            reason="bad_country",
            field="country_name",
        )
    return country.iso


def _operator(value: Any) -> str | None:
    if not is_given(value):
        return None
    if isinstance(value, int | str) and not isinstance(value, bool):
        text = str(value).strip()
        if len(text) <= MAX_OPERATOR and "\x00" not in text:
            return text
    raise InvalidRequest(
        f"operator_id must be an operator's name of at most {MAX_OPERATOR} characters",
        reason="invalid",
    )


def _statuses(value: Any) -> tuple[str, ...] | None:
    """One word or an array of them, any case; each must be on the seed's list."""
    if not is_given(value):
        return None
    words = value if isinstance(value, list) else [value]
    selected: set[str] = set()
    for word in words:
        statuses = STATUS_FILTER.get(word.strip().lower()) if isinstance(word, str) else None
        if statuses is None:
            raise InvalidRequest(f"status {word!r} is not on the list", reason="bad_status")
        selected.update(statuses)
    return tuple(sorted(selected))


def _clicks(payload: dict[str, Any]) -> ClickFilter | None:
    enabled, comparison, count = (
        payload.get("sl_clicks"),
        payload.get("sl_clicks_comp"),
        payload.get("sl_clicks_count"),
    )
    if is_given(comparison) and comparison not in CLICK_COMPARISONS:
        raise InvalidRequest(
            f"sl_clicks_comp must be one of < > =, not {comparison!r}",
            reason="bad_sl_clicks_comp",
        )
    number = None
    if is_given(count):
        number = _whole(count)
        if number is None or not 0 <= number <= MAX_CLICKS:
            raise InvalidRequest(
                f"sl_clicks_count must be a whole number 0 to {MAX_CLICKS}", reason="invalid"
            )
    if is_given(enabled) and _flag(enabled) is None:
        raise InvalidRequest("sl_clicks must be true or false", reason="invalid")
    if not (is_given(enabled) and _flag(enabled)):
        return None
    return ClickFilter(comparison if is_given(comparison) else None, number)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None
