"""Rendering a stored message as an export row: price, times, country, carrier, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tidings.exports.rows import (
    RECORD_WIDTH,
    SMS_FIELDS,
    VIBER_RECORD_WIDTH,
    BrandLookup,
    RowRenderer,
    carrier_of,
    carrier_prefix_lengths,
    format_price,
    format_time,
)
from tidings.numbering import CountryTable, parse_msisdn

COUNTRIES = CountryTable.load()


def record(**changes: object) -> tuple[object, ...]:
    values: dict[str, object] = {
        "id": 1529112192,
        "channel": "sms",
        "msisdn": "380505142320",
        "country": "UA",
        "originator": "testsms",
        "price": 20_000,
        "currency": "EUR",
        "time_in": "2020-10-22 17:28:45.123456",
        "time_sent": datetime(2020, 10, 22, 17, 28, 46, 999999, tzinfo=UTC),
        "time_dr": None,
        "status": "queued",
        "body": "testing message",
    }
    values.update(changes)
    return tuple(values.values())


def test_a_row_in_the_seeds_shape() -> None:
    row = RowRenderer(COUNTRIES)(record())
    assert row == {
        "message_ID": 1529112192,
        "message_type": "sms",
        "direction": "outbound",
        "msisdn": 380505142320,
        "Country_name": "Ukraine",
        "brand_name": "Vodafone",
        "mcc": "255",
        "mnc": "",
        "originator": "testsms",
        "price": "0.0200000 EUR",
        "Incoming date": "2020-10-22 17:28:45",
        "Sending date": "2020-10-22 17:28:46",
        "DLR Date": None,
        "Status": "Accepted",
        "body": "testing message",
    }
    assert tuple(row or {}) == SMS_FIELDS


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "0.0000000 EUR"),
        (1, "0.0000010 EUR"),
        (20_000, "0.0200000 EUR"),
        (12_345_678, "12.3456780 EUR"),
    ],
)
def test_price_has_seven_decimals(micros: int, text: str) -> None:
    assert format_price(micros, "EUR") == text


def test_times_from_either_database() -> None:
    assert format_time(None) is None
    assert format_time("2026-01-02 03:04:05.678901") == "2026-01-02 03:04:05"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02 03:04:05"
    kyiv = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=kyiv)) == "2026-01-02 01:04:05"


def test_statuses_are_the_seeds_capitalised_words() -> None:
    render = RowRenderer(COUNTRIES)
    words = {
        status: (render(record(status=status)) or {})["Status"]
        for status in (
            "accepted",
            "scheduled",
            "queued",
            "sent",
            "unknown",
            "delivered",
            "read",
            "not_viber_user",
        )
    }
    assert words == {
        "accepted": "Accepted",
        "scheduled": "Scheduled",
        "queued": "Accepted",
        "sent": "Sent",
        "unknown": "Unknown",
        "delivered": "Delivered",
        "read": "Read",
        "not_viber_user": "not-viber-user",  # lower case, as the seed writes it
    }


def test_a_country_without_an_mcc_has_empty_name_and_mcc() -> None:
    row = RowRenderer(COUNTRIES)(record(msisdn="35818123456", country="AX"))
    assert row is not None and (row["Country_name"], row["mcc"]) == ("", "")


@pytest.mark.parametrize(
    "msisdn",
    [
        "380671234567",
        "380501234567",
        "380931234567",
        "46701234567",
        "447911123456",
        "12015550123",
        "393123456789",
        "79161234567",
        "4915112345678",
        "861381234567" + "8",
    ],
)
def test_brand_is_libphonenumbers_carrier(msisdn: str) -> None:
    destination = parse_msisdn(msisdn)
    assert BrandLookup().lookup(msisdn, destination.iso) == (destination.carrier or "")


def test_brand_memo_is_keyed_by_the_longest_carrier_prefix() -> None:
    lengths = carrier_prefix_lengths()
    assert lengths["380"] == 5
    brands = BrandLookup()
    for tail in range(1000):
        brands.lookup(f"3806712{tail:05d}", "UA")
    assert len(brands._brands) == 1  # one look-up for a thousand Kyivstar numbers
    assert carrier_of("380671234567", "380") == "Kyivstar"
    assert carrier_of("380671234567", "0") == ""
    small = BrandLookup(cache_size=2)
    for msisdn in ("380671234567", "380501234567", "380931234567"):
        small.lookup(msisdn, "UA")
    assert len(small._brands) <= 2


def test_operator_filter_drops_other_carriers() -> None:
    render = RowRenderer(COUNTRIES, operator="KYIVSTAR")
    assert render(record(msisdn="380671234567")) is not None
    assert render(record(msisdn="380501234567")) is None
    assert [r["msisdn"] for r in render.render_many([record(msisdn="380671234567"), record()])] == [
        380671234567
    ]


def viber_record(fallback: tuple[object, ...] | None, **changes: object) -> tuple[object, ...]:
    """A Viber record as `repository.export_query` selects it: the message, its content,
    then its fallback SMS's columns (all None without one)."""
    message = record(channel="viber", status="not_viber_user", **changes)
    content = ("https://site.com/image.png", "КУПИ!", "https://site.com/buy.html")
    return (*message, *content, *(fallback or (None,) * RECORD_WIDTH))


def test_a_viber_record_renders_the_seeds_viber_row() -> None:
    fallback = record(
        id=1529112195, status="delivered", body="testing message for Viber undeliv", price=0
    )
    row = RowRenderer(COUNTRIES)(viber_record(fallback, id=1529112194))
    assert row is not None
    assert tuple(row) == (*SMS_FIELDS, "img", "Caption", "Action", "alternativeSMS")
    assert (row["message_ID"], row["message_type"], row["Status"]) == (
        1529112194,
        "viber",
        "not-viber-user",
    )
    assert (row["img"], row["Caption"], row["Action"]) == (
        "https://site.com/image.png",
        "КУПИ!",
        "https://site.com/buy.html",
    )
    assert row["alternativeSMS"] == {
        **(RowRenderer(COUNTRIES)(fallback) or {}),
        "message_ID": 1529112195,
        "message_type": "sms",
        "Status": "Delivered",
        "price": "0.0000000 EUR",
        "body": "testing message for Viber undeliv",
    }
    assert len(viber_record(fallback)) == VIBER_RECORD_WIDTH


def test_a_viber_record_without_fallback_has_no_alternative() -> None:
    row = RowRenderer(COUNTRIES)(viber_record(None))
    assert row is not None and "alternativeSMS" not in row
    assert row["Caption"] == "КУПИ!"
    # The operator filter applies to the Viber message (its fallback has the same number).
    assert RowRenderer(COUNTRIES, operator="Kyivstar")(viber_record(record())) is None


def test_an_inbound_record_is_an_sms_row_of_direction_inbound() -> None:
    inbound = (7, "inbound", "380505142320", "", "4567", 0, "", "2026-03-01 12:00:00", None, None,
               "delivered", "STOP")  # fmt: skip
    row = RowRenderer(COUNTRIES)(inbound)
    assert row is not None
    assert (row["message_type"], row["direction"]) == ("sms", "inbound")
    assert (row["msisdn"], row["originator"], row["body"]) == (380505142320, "4567", "STOP")
    assert (row["Sending date"], row["DLR Date"], row["Status"]) == (None, None, "Delivered")
