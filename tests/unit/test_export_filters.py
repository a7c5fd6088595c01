"""The statistics filter: seed 004's field rules, error reasons, null handling, windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tidings.api.client.errors import STAT_CODES
from tidings.errors import InvalidRequest
from tidings.exports.filters import (
    ClickFilter,
    ExportFilter,
    is_given,
    parse_callback,
    parse_filter,
    parse_moment,
)
from tidings.exports.statuses import SEED_WORDS, STATUS_FILTER, STATUS_WORD
from tidings.messages.status import Status
from tidings.numbering import CountryTable

COUNTRIES = CountryTable.load()
WINDOW = {"time_in_from": "2020-10-22 17:28:45", "time_in_to": "2020-10-22 17:28:45"}


def parse(payload: Any) -> ExportFilter:
    return parse_filter(payload, COUNTRIES)


def code_of(payload: Any) -> int:
    with pytest.raises(InvalidRequest) as caught:
        parse(payload)
    return STAT_CODES[caught.value.reason]


def test_the_seeds_own_example() -> None:
    seed = {
        "message_id": ["1530913625", "1530913626"],
        "msisdn": ["380505142322", "380505142323"],
        "originator": "testsms",
        "source_type": "web",
        "message_type": "sms",
        **WINDOW,
        "time_sent_from": None,
        "time_sent_to": None,
        "country_name": "Ukraine",
        "operator_id": None,
        "status": None,
        "sl_clicks": None,
        "sl_clicks_comp": None,
        "sl_clicks_count": None,
        "callback_url": "https://somelink.com/message_report",
    }
    assert parse(seed) == ExportFilter(message_ids=(1530913625, 1530913626))
    assert parse_callback(seed) == "https://somelink.com/message_report"
    del seed["message_id"]
    spec = parse(seed)
    assert spec.time_in_from == datetime(2020, 10, 22, 17, 28, 45, tzinfo=UTC)
    assert spec.time_in_until == datetime(2020, 10, 22, 17, 28, 46, tzinfo=UTC)
    assert spec.msisdns == ("380505142322", "380505142323")
    assert (spec.originator, spec.source_type, spec.message_type) == ("testsms", "web", "sms")
    assert spec.country == "UA" and spec.operator is None and spec.statuses is None
    assert spec.time_sent_from is None and spec.clicks is None


@pytest.mark.parametrize("value", [None, "", "null", "NULL", " null "])
def test_null_in_any_form_is_not_given(value: Any) -> None:
    assert not is_given(value)
    spec = parse({**WINDOW, "originator": value, "status": value, "country_name": value})
    assert spec.originator is None and spec.statuses is None and spec.country is None


def test_message_id_rules() -> None:
    assert parse({"message_id": [3, "2", " 1 ", 3]}).message_ids == (1, 2, 3)
    assert parse({"message_id": [], **WINDOW}).message_ids is None  # empty: ignored
    assert parse({"message_id": "5", **WINDOW}).message_ids is None  # not an array: ignored
    assert parse({"message_id": list(range(1, 301))}).message_ids is not None
    assert code_of({"message_id": list(range(1, 302))}) == 80
    for bad in (["x"], [True], [-1], [0], [2**53], [None], ["1e3"], [{"id": 1}]):
        assert code_of({"message_id": bad}) == 80, bad


def test_message_id_ignores_everything_else_but_the_callback() -> None:
    payload = {"message_id": [7], "status": "bogus", "time_in_from": "bogus"}
    assert parse(payload) == ExportFilter(message_ids=(7,))
    assert parse_callback({**payload, "callback_url": "http://x.example/y"}) == "http://x.example/y"
    assert parse_callback({"callback_url": "ftp://x"}) is None
    assert parse_callback({"callback_url": "null"}) is None


def test_time_window_is_required_without_message_id() -> None:
    assert code_of({}) == 86
    assert code_of({"time_in_from": WINDOW["time_in_from"]}) == 86
    assert code_of({"time_in_to": WINDOW["time_in_to"], "time_in_from": "null"}) == 86
    assert code_of({"time_in_from": "2020-10-23", "time_in_to": "2020-10-22"}) == 86
    for bad in ("22.10.2020", "2020-10-22 25:00:00", "2020-13-01", 20201022, "now"):
        assert code_of({**WINDOW, "time_in_from": bad}) == 86, bad
    assert code_of({**WINDOW, "time_sent_to": "soon"}) == 86


@pytest.mark.parametrize(
    ("text", "moment", "precision"),
    [
        ("2020-10-22 17:28:45", datetime(2020, 10, 22, 17, 28, 45), timedelta(seconds=1)),
        ("2020-10-22T17:28:45Z", datetime(2020, 10, 22, 17, 28, 45), timedelta(seconds=1)),
        ("2020-10-22T19:28:45+02:00", datetime(2020, 10, 22, 17, 28, 45), timedelta(seconds=1)),
        (
            "2020-10-22 17:28:45.5",
            datetime(2020, 10, 22, 17, 28, 45, 500000),
            timedelta(microseconds=1),
        ),
        ("2020-10-22 17:28", datetime(2020, 10, 22, 17, 28), timedelta(minutes=1)),
        ("2020-10-22T17", datetime(2020, 10, 22, 17), timedelta(hours=1)),
        ("2020-10-22", datetime(2020, 10, 22), timedelta(days=1)),
    ],
)
def test_moments_and_their_precision(text: str, moment: datetime, precision: timedelta) -> None:
    assert parse_moment(text, "t") == (moment.replace(tzinfo=UTC), precision)


def test_the_upper_bound_includes_its_whole_second_or_day() -> None:
    spec = parse({"time_in_from": "2020-10-22", "time_in_to": "2020-10-22"})
    assert spec.time_in_until == datetime(2020, 10, 23, tzinfo=UTC)
    spec = parse({**WINDOW, "time_sent_to": "2020-10-22 10:00:00"})
    assert spec.time_sent_from is None
    assert spec.time_sent_until == datetime(2020, 10, 22, 10, 0, 1, tzinfo=UTC)


def test_choices_are_checked_and_lowered() -> None:
    spec = parse({**WINDOW, "message_type": "Viber", "source_type": " SMPP "})
    assert (spec.message_type, spec.source_type) == ("viber", "smpp")
    assert code_of({**WINDOW, "message_type": "mms"}) == 81
    assert code_of({**WINDOW, "message_type": ["sms"]}) == 81
    assert code_of({**WINDOW, "source_type": "email"}) == 82


def test_country_by_english_name_and_operator_only_with_it() -> None:
    assert parse({**WINDOW, "country_name": "united kingdom"}).country == "GB"
    assert parse({**WINDOW, "country_name": "South Korea"}).country == "KR"
    assert code_of({**WINDOW, "country_name": "Ukrainia"}) == 84
    assert code_of({**WINDOW, "country_name": 380}) == 84
    assert parse({**WINDOW, "operator_id": "Kyivstar"}).operator is None
    spec = parse({**WINDOW, "country_name": "Ukraine", "operator_id": " Kyivstar "})
    assert spec.operator == "Kyivstar"
    assert parse({**WINDOW, "country_name": "Ukraine", "operator_id": 3}).operator == "3"
    assert code_of({**WINDOW, "country_name": "Ukraine", "operator_id": ["x"]}) == 7


def test_statuses_map_onto_ours() -> None:
    assert parse({**WINDOW, "status": "delivered"}).statuses == ("delivered",)
    assert parse({**WINDOW, "status": "Accepted"}).statuses == ("accepted", "queued")
    assert parse({**WINDOW, "status": ["Sent", "FAILED"]}).statuses == ("failed", "sent")
    for word in ("Moderation", "Sending"):
        assert parse({**WINDOW, "status": word}).statuses == (), word
    # Viber's words, in any case, select Viber's final statuses.
    assert parse({**WINDOW, "status": "Read"}).statuses == ("read",)
    assert parse({**WINDOW, "status": "not-viber-user"}).statuses == ("not_viber_user",)
    assert parse({**WINDOW, "status": ["NOT-VIBER-USER", "read"]}).statuses == (
        "not_viber_user",
        "read",
    )
    assert code_of({**WINDOW, "status": "Lost"}) == 83
    assert code_of({**WINDOW, "status": 1}) == 83


def test_every_status_has_a_seed_word_and_every_seed_word_is_accepted() -> None:
    assert set(STATUS_WORD) == {status.value for status in Status}
    assert set(STATUS_WORD.values()) <= set(SEED_WORDS)
    # Spelt as the seed's list and its Viber row spell them: "Read", but "not-viber-user".
    assert (STATUS_WORD["read"], STATUS_WORD["not_viber_user"]) == ("Read", "not-viber-user")
    assert set(STATUS_FILTER) == {word.lower() for word in SEED_WORDS}
    selected = [status for statuses in STATUS_FILTER.values() for status in statuses]
    assert sorted(selected) == sorted(status.value for status in Status)  # each exactly once


def test_msisdn_rules() -> None:
    spec = parse({**WINDOW, "msisdn": ["+380505142322", "00380505142323", 380505142324]})
    assert spec.msisdns == ("380505142322", "380505142323", "380505142324")
    assert parse({**WINDOW, "msisdn": []}).msisdns is None
    assert parse({**WINDOW, "msisdn": "380505142322"}).msisdns is None
    for bad in (["abc"], [True], ["1" * 16], [None], ["+"]):
        assert code_of({**WINDOW, "msisdn": bad}) == 7, bad


def test_click_fields_are_checked() -> None:
    spec = parse({**WINDOW, "sl_clicks": "true", "sl_clicks_comp": "<", "sl_clicks_count": "10"})
    assert spec.clicks == ClickFilter("<", 10)
    assert parse({**WINDOW, "sl_clicks": False, "sl_clicks_comp": "="}).clicks is None
    assert code_of({**WINDOW, "sl_clicks_comp": ">="}) == 85
    assert code_of({**WINDOW, "sl_clicks_count": 1_000_000}) == 7
    assert code_of({**WINDOW, "sl_clicks_count": -1}) == 7
    assert code_of({**WINDOW, "sl_clicks": "maybe"}) == 7


def test_originator_rules() -> None:
    assert parse({**WINDOW, "originator": 1234}).originator == "1234"
    assert code_of({**WINDOW, "originator": "x" * 33}) == 7
    assert code_of({**WINDOW, "originator": {"a": 1}}) == 7


def test_the_body_must_be_an_object() -> None:
    assert code_of([WINDOW]) == 7
    assert code_of("time_in_from") == 7


def test_filters_survive_their_json_form() -> None:
    spec = parse(
        {
            **WINDOW,
            "msisdn": ["380505142322"],
            "originator": "a",
            "source_type": "api",
            "message_type": "sms",
            "time_sent_from": "2020-10-22",
            "country_name": "Ukraine",
            "operator_id": "Kyivstar",
            "status": ["Delivered", "Read"],
            "sl_clicks": 1,
            "sl_clicks_comp": "=",
            "sl_clicks_count": 0,
        }
    )
    assert ExportFilter.from_json(spec.to_json()) == spec
    ids = ExportFilter(message_ids=(1, 2))
    assert ids.to_json() == {"message_ids": [1, 2]} and ExportFilter.from_json(ids.to_json()) == ids
    empty = parse({**WINDOW, "status": "Moderation"})
    assert ExportFilter.from_json(empty.to_json()).statuses == ()
