"""HLR export rows: the result text the export stream carries, and the row built from it."""

from __future__ import annotations

from datetime import UTC, datetime

from tidings.exports.rows import HLR_BODY_FIELDS, RowRenderer, encode_hlr
from tidings.numbering import CountryTable

COUNTRIES = CountryTable.load()


def record(status: str, body: str) -> tuple[object, ...]:
    moment = datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    return (7, "hlr", "380972920000", "UA", "HLR", 2000, "EUR", moment, moment, None, status, body)


def test_an_active_ported_number() -> None:
    row = RowRenderer(COUNTRIES)(record("delivered", encode_hlr("active", "25501", True, False)))
    assert row is not None
    assert (row["message_type"], row["mcc"], row["mnc"], row["Status"]) == (
        "hlr",
        "255",
        "01",
        "Delivered",
    )
    assert tuple(row["body"]) == HLR_BODY_FIELDS
    assert row["body"] == {
        "Country_name": "Ukraine",
        "Brand": "Kyivstar",
        "Operator": "Kyivstar",
        "MCC": "255",
        "MNC": "01",
        "Status": "Active",
        "IMSI": None,
        "Ported": 1,
        "Roaming": 0,
    }


def test_a_lookup_without_a_network() -> None:
    row = RowRenderer(COUNTRIES)(record("sent", encode_hlr("sent", None, False, False)))
    assert row is not None
    assert (row["mcc"], row["mnc"], row["Status"]) == ("255", "", "Sent")
    assert (row["body"]["MCC"], row["body"]["MNC"], row["body"]["Status"]) == ("255", None, "Sent")
