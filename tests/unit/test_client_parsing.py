"""Pure tests of tidings.api.client.parsing: seed 004's field rules, without HTTP or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tidings.api.client.errors import SMS_CODES
from tidings.api.client.parsing import (
    MAX_ORIGINATOR,
    MAX_SCHEDULE_AHEAD,
    REFERENCE,
    parse_callback_url,
    parse_datetime,
    parse_int,
    parse_reference,
    parse_sms_request,
)
from tidings.errors import InvalidRequest
from tidings.messages.acceptance import SmsItem, SmsRequest

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def single(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "destination": "phone",
        "originator": "test",
        "body": "test sms",
        "msisdn": "380972000000",
        "reference": "12erdgm9",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not ...}


def reason_of(payload: Any) -> str:
    with pytest.raises(InvalidRequest) as raised:
        parse_sms_request(payload, NOW)
    return raised.value.reason


# --- parse_sms_request -------------------------------------------------------------------


def test_single_from_the_seed() -> None:
    parsed = parse_sms_request(single(validity=72, tariff=9), NOW)
    assert parsed == SmsRequest(
        destination="phone",
        items=[SmsItem("380972000000", "12erdgm9", "test", "test sms")],
        tariff=9,
        validity_hours=72,
        send_at=None,
        callback_url=None,
    )
    assert not parsed.is_batch


def test_defaults() -> None:
    parsed = parse_sms_request(single(), NOW)
    assert parsed.tariff is None  # the client's own tariff
    assert parsed.validity_hours == 72
    assert parsed.send_at is None and parsed.callback_url is None


def test_phones_share_originator_and_body() -> None:
    parsed = parse_sms_request(
        {
            "destination": "phones",
            "phones": [
                {"msisdn": "380972000001", "reference": "12erdgm9", "originator": "ignored"},
                {"msisdn": 380972000002, "reference": 12345},
            ],
            "originator": "test",
            "body": "test sms",
            "validity": "12",
            "tariff": "9",
            "send_time": "2026-03-02T10:00:00+02:00",
            "callback_url": "https://example.com/dlr",
        },
        NOW,
    )
    assert parsed.is_batch
    assert list(parsed.items) == [
        SmsItem("380972000001", "12erdgm9", "test", "test sms"),
        SmsItem("380972000002", "12345", "test", "test sms"),
    ]
    assert (parsed.validity_hours, parsed.tariff) == (12, 9)
    assert parsed.send_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert parsed.callback_url == "https://example.com/dlr"


def test_individual_items_carry_their_own_text_and_scheduled_datetime() -> None:
    parsed = parse_sms_request(
        {
            "destination": "individual",
            "phones": [
                {"originator": "test1", "body": "one", "msisdn": "380972000001", "reference": "a"},
                {"originator": "test2", "body": "two", "msisdn": "380972000002", "reference": "b"},
            ],
            "originator": "unused",
            "scheduledDatetime": "2026-03-01T15:00:00Z",
        },
        NOW,
    )
    assert [(i.originator, i.body) for i in parsed.items] == [("test1", "one"), ("test2", "two")]
    assert parsed.send_at == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def test_send_time_wins_over_scheduled_datetime() -> None:
    parsed = parse_sms_request(
        single(send_time="2026-03-01T13:00:00Z", scheduledDatetime="2026-03-01T14:00:00Z"), NOW
    )
    assert parsed.send_at == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    fallback = single(send_time=None, scheduledDatetime="2026-03-01T14:00:00Z")
    assert parse_sms_request(fallback, NOW).send_at == datetime(2026, 3, 1, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "example.com", "", 17, None, "http://" + "a" * 2000]
)
def test_unusable_callback_url_is_ignored(url: Any) -> None:
    assert parse_callback_url(url) is None
    assert parse_sms_request(single(callback_url=url), NOW).callback_url is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "bad_payload"),
        ("text", "bad_payload"),
        (None, "bad_payload"),
        (single(destination=...), "missing"),
        (single(destination=None), "missing"),
        (single(destination="addressbook"), "unsupported"),
        (single(destination="sms"), "bad_payload"),
        (single(destination=["phone"]), "bad_payload"),
        ({"destination": "phones", "originator": "o", "body": "b"}, "missing"),
        ({"destination": "phones", "phones": {}, "originator": "o", "body": "b"}, "bad_payload"),
        ({"destination": "phones", "phones": [], "originator": "o", "body": "b"}, "bad_payload"),
        ({"destination": "phones", "phones": [1], "originator": "o", "body": "b"}, "bad_payload"),
        ({"destination": "individual", "phones": [[]]}, "bad_payload"),
        (single(validity=0), "bad_validity"),
        (single(validity=73), "bad_validity"),
        (single(validity="abc"), "bad_validity"),
        (single(validity=True), "bad_validity"),
        (single(validity=1.5), "bad_validity"),
        (single(tariff=10), "bad_tariff"),
        (single(tariff="x"), "bad_tariff"),
        (single(tariff=-1), "bad_tariff"),
        (single(send_time="tomorrow"), "bad_send_time"),
        (single(send_time=1), "bad_send_time"),
        (single(msisdn=...), "bad_msisdn"),
        (single(msisdn=""), "bad_msisdn"),
        (single(msisdn=True), "bad_msisdn"),
        (single(msisdn=3.8e11), "bad_msisdn"),
        (single(reference=...), "missing_reference"),
        (single(reference=""), "missing_reference"),
        (single(reference="has space"), "bad_reference"),
        (single(reference="a" * 33), "bad_reference"),
        (single(reference=1.5), "bad_reference"),
        (single(reference=False), "bad_reference"),
        (single(originator=...), "bad_originator"),
        (single(originator=" "), "bad_originator"),
        (single(originator="a" * 15), "bad_originator"),
        (single(originator="a\tb"), "bad_originator"),
        (single(body=...), "bad_body"),
        (single(body=""), "bad_body"),
        (single(body=" \n"), "bad_body"),
        (single(body=5), "bad_body"),
    ],
)
def test_rule_violations_carry_their_reason(payload: Any, reason: str) -> None:
    assert reason_of(payload) == reason
    assert reason in SMS_CODES  # every reason maps onto a seed error code


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # The first failing item of a batch decides, with its index in the message.
        (
            {
                "destination": "phones",
                "phones": [{"msisdn": "1", "reference": "a"}, {"msisdn": "2"}],
                "originator": "o",
                "body": "b",
            },
            "missing_reference",
        ),
        (
            {
                "destination": "individual",
                "phones": [{"msisdn": "1", "reference": "a", "originator": "o"}],
            },
            "bad_body",
        ),
    ],
)
def test_batch_errors_name_the_item(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_sms_request(payload, NOW)
    assert raised.value.reason == reason
    assert raised.value.message.startswith("phones[")


def test_originator_of_14_characters_is_fine() -> None:
    assert MAX_ORIGINATOR == 14
    assert parse_sms_request(single(originator="a" * 14), NOW).items[0].originator == "a" * 14


# --- parse_datetime ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T14:00:00Z", datetime(2026, 3, 1, 14, tzinfo=UTC)),
        ("2026-03-01T14:00:00z", datetime(2026, 3, 1, 14, tzinfo=UTC)),
        ("2026-03-01T14:00:00+00:00", datetime(2026, 3, 1, 14, tzinfo=UTC)),
        ("2026-03-01T14:00:00+02:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T14:00:00-05:30", datetime(2026, 3, 1, 19, 30, tzinfo=UTC)),
        ("2026-03-01T14:00:00.250+01:00", datetime(2026, 3, 1, 13, 0, 0, 250000, tzinfo=UTC)),
        ("2026-03-01T14:00:00", datetime(2026, 3, 1, 14, tzinfo=UTC)),  # naive = UTC
        ("2026-03-01 14:00:00", datetime(2026, 3, 1, 14, tzinfo=UTC)),
        ("  2026-03-01T14:00:00Z  ", datetime(2026, 3, 1, 14, tzinfo=UTC)),
        ("2026-03-02", datetime(2026, 3, 2, tzinfo=UTC)),
        # Past times are accepted as they are (the service sends them now).
        ("2020-01-01T00:00:00Z", datetime(2020, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text, name="send_time", now=NOW)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_parse_datetime_absent() -> None:
    assert parse_datetime(None, name="send_time", now=NOW) is None
    assert parse_datetime("", name="send_time", now=NOW) is None


def test_parse_datetime_horizon() -> None:
    edge = NOW + MAX_SCHEDULE_AHEAD
    assert timedelta(days=30) == MAX_SCHEDULE_AHEAD
    assert parse_datetime(edge.isoformat(), name="send_time", now=NOW) == edge
    just_after = (edge + timedelta(seconds=1)).isoformat()
    with pytest.raises(InvalidRequest) as raised:
        parse_datetime(just_after, name="send_time", now=NOW)
    assert raised.value.reason == "bad_send_time"
    # The horizon is about the instant, not the written wall time.
    same_instant = (edge + timedelta(hours=5)).replace(tzinfo=timezone(timedelta(hours=5)))
    assert parse_datetime(same_instant.isoformat(), name="send_time", now=NOW) == edge


@pytest.mark.parametrize(
    "value", ["tomorrow", "2026-13-01T00:00:00", "2026-03-01T25:00:00", "12:00", 1, 1.5, [], {}]
)
def test_parse_datetime_rejects(value: Any) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_datetime(value, name="send_time", now=NOW)
    assert raised.value.reason == "bad_send_time"


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_datetime_out_of_range(text: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_datetime(text, name="send_time", now=NOW)
    assert raised.value.reason == "bad_send_time"


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.none()
        | st.builds(
            timezone,
            st.timedeltas(
                min_value=timedelta(hours=-23, minutes=-59),
                max_value=timedelta(hours=23, minutes=59),
            ),
        ),
    )
)
def test_parse_datetime_round_trips_any_instant(moment: datetime) -> None:
    expected = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if expected > NOW + MAX_SCHEDULE_AHEAD:
        with pytest.raises(InvalidRequest):
            parse_datetime(moment.isoformat(), name="send_time", now=NOW)
        return
    parsed = parse_datetime(moment.isoformat(), name="send_time", now=NOW)
    assert parsed == expected and parsed is not None and parsed.tzinfo is UTC


# --- parse_int ---------------------------------------------------------------------------


def _int(value: Any, default: int | None = None) -> int | None:
    return parse_int(value, name="validity", low=1, high=72, reason="bad_validity", default=default)


@pytest.mark.parametrize(
    ("value", "expected"), [(72, 72), (1, 1), ("72", 72), (" 7 ", 7), ("01", 1), (None, None)]
)
def test_parse_int_accepts(value: Any, expected: int | None) -> None:
    assert _int(value) == expected


def test_parse_int_default() -> None:
    assert _int(None, default=72) == 72


@pytest.mark.parametrize(
    "value", [True, False, 0, 73, -1, "0", "73", "-1", "abc", "", " ", "7.0", 7.0, 1.5, [], {}]
)
def test_parse_int_rejects(value: Any) -> None:
    with pytest.raises(InvalidRequest) as raised:
        _int(value)
    assert raised.value.reason == "bad_validity"
    assert raised.value.field == "validity"


@pytest.mark.parametrize("value", ["--5", "²", "-²"])
def test_parse_int_rejects_digit_lookalikes(value: str) -> None:
    with pytest.raises(InvalidRequest):
        _int(value)


@given(st.integers())
def test_parse_int_range(value: int) -> None:
    if 1 <= value <= 72:
        assert _int(value) == value
        assert _int(str(value)) == value
    else:
        with pytest.raises(InvalidRequest):
            _int(value)


# --- The reference rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        *("a", "12erdgm9", "A1b2C3", "0", "z" * 32, "1" * 32),
        *("AD-6640-7006", "ref-1", "ref_1", "ref.1", "urn:order:7", "shop/42", "ext_id_19"),
    ],
)
def test_reference_regex_accepts(text: str) -> None:
    assert REFERENCE.fullmatch(text)
    assert parse_reference(text, None) == text


@pytest.mark.parametrize(
    "text",
    ["has space", "a" * 33, "ref;1", "ref+1", "ref,1", "é", "٣", "ref\n", "\nref", "ref\x00"],
)
def test_reference_regex_rejects(text: str) -> None:
    assert not REFERENCE.fullmatch(text)
    with pytest.raises(InvalidRequest) as raised:
        parse_reference(text, 0)
    assert raised.value.reason == "bad_reference"
    assert raised.value.message.startswith("phones[0]: ")


@given(st.from_regex(r"[A-Za-z0-9_.:/-]{1,32}", fullmatch=True))
def test_any_valid_reference_is_kept(text: str) -> None:
    assert parse_reference(text, None) == text


@given(st.text(min_size=1))
def test_reference_is_ascii_alphanumerics_and_separators_up_to_32(text: str) -> None:
    valid = len(text) <= 32 and all((c.isascii() and c.isalnum()) or c in "-_.:/" for c in text)
    if valid:
        assert parse_reference(text, None) == text
    else:
        with pytest.raises(InvalidRequest):
            parse_reference(text, None)


# --- Property: arbitrary JSON never escapes as anything but InvalidRequest ---------------

FIELDS = [
    "destination",
    "phones",
    "msisdn",
    "reference",
    "originator",
    "body",
    "validity",
    "tariff",
    "send_time",
    "scheduledDatetime",
    "callback_url",
]
PLAUSIBLE = [
    "phone",
    "phones",
    "individual",
    "addressbook",
    "380972000001",
    "+380972000002",
    "12erdgm9",
    "test",
    "72",
    "9",
    "0",
    "-1",
    "2026-03-01T13:00:00Z",
    "2026-03-01T13:00:00+02:00",
    "2020-01-01",
    "https://example.com/dlr",
    "",
    " ",
]

keys = st.sampled_from(FIELDS) | st.text(max_size=6)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.sampled_from(PLAUSIBLE)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=8),
    max_leaves=30,
)
# A third of the dicts get a real destination, so that more than the first check runs.
with_destination = st.builds(
    lambda rest, destination: {**rest, "destination": destination},
    st.dictionaries(keys, json_values, max_size=10),
    st.sampled_from(["phone", "phones", "individual"]),
)
payloads = json_values | st.dictionaries(keys, json_values, max_size=11) | with_destination


def _check_result(parsed: SmsRequest) -> None:
    assert parsed.destination in ("phone", "phones", "individual")
    assert parsed.items and (len(parsed.items) == 1 or parsed.is_batch)
    assert 1 <= parsed.validity_hours <= 72
    assert parsed.tariff is None or 0 <= parsed.tariff <= 9
    if parsed.send_at is not None:
        assert parsed.send_at.tzinfo is UTC and parsed.send_at <= NOW + MAX_SCHEDULE_AHEAD
    for item in parsed.items:
        assert isinstance(item.msisdn, str) and item.msisdn
        assert item.reference is not None and REFERENCE.fullmatch(item.reference)
        assert 0 < len(item.originator) <= MAX_ORIGINATOR and item.originator.strip()
        assert isinstance(item.body, str) and item.body.strip()


@settings(max_examples=300, deadline=None)
@given(payloads)
@example({"destination": "phones", "phones": [{}]})
@example({"destination": "individual", "phones": [{"msisdn": 1, "reference": 1}]})
@example(single(validity=None, tariff=None, send_time=None))
def test_arbitrary_payloads_raise_only_invalid_request(payload: Any) -> None:
    try:
        parsed = parse_sms_request(payload, NOW)
    except InvalidRequest as error:
        assert error.reason in SMS_CODES
        return
    _check_result(parsed)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request of each destination with a few fields replaced by arbitrary JSON."""
    destination = draw(st.sampled_from(["phone", "phones", "individual"]))
    entry = {"msisdn": "380972000001", "reference": "r1", "originator": "o", "body": "b"}
    if destination == "phone":
        payload: dict[str, Any] = {"destination": "phone", **entry}
    else:
        items = [dict(entry, reference=f"r{i}") for i in range(draw(st.integers(1, 3)))]
        for item in items:
            for field in draw(st.lists(st.sampled_from(FIELDS), max_size=2)):
                item[field] = draw(json_values)
        payload = {"destination": destination, "phones": items, "originator": "o", "body": "b"}
    for field in draw(st.lists(st.sampled_from(FIELDS[1:]), max_size=3)):
        payload[field] = draw(json_values)
    return payload


@settings(max_examples=300, deadline=None)
@given(near_valid())
def test_near_valid_payloads_raise_only_invalid_request(payload: dict[str, Any]) -> None:
    try:
        parsed = parse_sms_request(payload, NOW)
    except InvalidRequest as error:
        assert error.reason in SMS_CODES
        return
    _check_result(parsed)
