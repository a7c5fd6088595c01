"""One export row per message, in seed 004's shape ("Детальная статистика сообщений").

Every row has the SMS fields, in the seed's order, with `direction` (ours: `outbound`, or
`inbound` for an inbound message, exports/inbound.py) after `message_type`:

    message_ID, message_type, direction, msisdn, Country_name, brand_name, mcc, mnc, originator,
    price, Incoming date, Sending date, DLR Date, Status, body

An HLR row is the same with `body` holding the HLR result (`hlr_body`, filled from the
`hlr_lookups` table by `hlr_export_row`); a Viber row adds `img`, `Caption`, `Action` and,
when a fallback SMS went out, `alternativeSMS` holding that SMS's own row (`viber_row`).

* `brand_name` is the carrier the number range was allocated to (libphonenumber's data, not
  the current one where numbers are portable), empty when unknown.
* `mcc` is the country's primary E.212 code; `mnc` is empty: Tidings does not learn the
  network of a message (no supplier reports it). An HLR row has the network its lookup found.
* Times are UTC, `YYYY-MM-DD HH:MM:SS`; None where the event has not happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from phonenumbers import carrier as _carrier

from tidings.exports.statuses import STATUS_WORD
from tidings.numbering import CountryTable

ExportRow = dict[str, Any]

SMS_FIELDS = (
    "message_ID",
    "message_type",
    "direction",
    "msisdn",
    "Country_name",
    "brand_name",
    "mcc",
    "mnc",
    "originator",
    "price",
    "Incoming date",
    "Sending date",
    "DLR Date",
    "Status",
    "body",
)
HLR_BODY_FIELDS = (
    "Country_name",
    "Brand",
    "Operator",
    "MCC",
    "MNC",
    "Status",
    "IMSI",
    "Ported",
    "Roaming",
)
VIBER_FIELDS = ("img", "Caption", "Action")

# The numbers looked up per export, at most (each entry is a few hundred bytes).
BRAND_CACHE_SIZE = 100_000


def format_price(micros: int, currency: str) -> str:
    """Seed 004's "0.0000000 EUR": seven decimals, exact (money is stored in micro-units)."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{fraction:06d}0 {currency}"


def format_time(value: Any) -> str | None:
    """A stored time as the seed writes it: from a datetime, or SQLite's stored ISO text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:19]  # "YYYY-MM-DD HH:MM:SS.ffffff", always UTC
    moment: datetime = value
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.isoformat(" ", "seconds")[:19]  # strftime's result, in half the time


class BrandLookup:
    """The carrier name of a number, through libphonenumber, memoised per instance.

    libphonenumber finds a carrier by the longest prefix of the number in its carrier map, so
    the answer depends only on the number's first n digits, n being the longest prefix the
    map has for that country code (5 for Ukraine): the memo is keyed by those digits, and a
    million different numbers cost a few hundred look-ups. The message was validated when it
    was accepted, so the look-up skips parse_msisdn's checks.
    """

    def __init__(self, cache_size: int = BRAND_CACHE_SIZE) -> None:
        self._cache_size = cache_size
        self._codes: dict[str, str] = {}
        self._prefix_lengths: dict[str, int] | None = None
        self._brands: dict[str, str] = {}

    def lookup(self, msisdn: str, iso: str) -> str:
        code = self._codes.get(iso)
        if code is None:
            code = self._codes[iso] = str(phonenumbers.country_code_for_region(iso))
        if self._prefix_lengths is None:
            self._prefix_lengths = carrier_prefix_lengths()
        length = self._prefix_lengths.get(code)
        key = msisdn if length is None else msisdn[:length]
        brand = self._brands.get(key)
        if brand is None:
            if len(self._brands) >= self._cache_size:
                self._brands.clear()
            brand = self._brands[key] = carrier_of(msisdn, code)
        return brand


def carrier_prefix_lengths() -> dict[str, int]:
    """Country code -> the longest prefix libphonenumber's carrier map has for it."""
    try:
        from phonenumbers.carrierdata import CARRIER_DATA
    except ImportError:  # laid out differently: memoise per number instead
        return {}
    lengths: dict[str, int] = {}
    for prefix in CARRIER_DATA:
        for size in (1, 2, 3):
            code = prefix[:size]
            if int(code) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                lengths[code] = max(lengths.get(code, 0), len(prefix))
                break
    return lengths


def carrier_of(msisdn: str, code: str) -> str:
    """The carrier name of E.164 digits whose country code is `code`; empty when unknown."""
    national = msisdn[len(code) :]
    if code == "0" or not msisdn.startswith(code) or not national.isdigit():
        return ""
    number = phonenumbers.PhoneNumber(country_code=int(code), national_number=int(national))
    if national.startswith("0"):
        number.italian_leading_zero = True
        number.number_of_leading_zeros = len(national) - len(national.lstrip("0"))
    return _carrier.name_for_valid_number(number, "en") or ""


class RowRenderer:
    """Turns the records `ExportRepository.stream` yields into rows; None drops a record.

    Made once per build: it memoises countries and carriers for that build only.
    """

    def __init__(self, countries: CountryTable, operator: str | None = None) -> None:
        self._countries = countries
        self._country_info: dict[str, tuple[str, str]] = {}
        self._brands = BrandLookup()
        self._operator = operator.casefold() if operator else None

    def _country(self, iso: str) -> tuple[str, str]:
        info = self._country_info.get(iso)
        if info is None:
            country = self._countries.by_iso(iso)
            info = ("", "") if country is None else (country.name, country.mcc)
            self._country_info[iso] = info
        return info

    def __call__(self, record: Sequence[Any]) -> ExportRow | None:
        (
            message_id,
            channel,
            msisdn,
            iso,
            originator,
            price_micros,
            currency,
            time_in,
            time_sent,
            time_dr,
            status,
            body,
            *viber,
        ) = record
        brand = self._brands.lookup(msisdn, iso)
        if self._operator is not None and brand.casefold() != self._operator:
            return None
        name, mcc = self._country(iso)
        inbound = channel == INBOUND
        row = {
            "message_ID": message_id,
            "message_type": SMS if inbound else channel,
            "direction": "inbound" if inbound else "outbound",
            "msisdn": int(msisdn) if msisdn.isdigit() else msisdn,
            "Country_name": name,
            "brand_name": brand,
            "mcc": mcc,
            "mnc": "",
            "originator": originator,
            "price": format_price(price_micros, currency),
            "Incoming date": format_time(time_in),
            "Sending date": format_time(time_sent),
            "DLR Date": format_time(time_dr),
            "Status": STATUS_WORD.get(status, status.capitalize()),
            "body": body,
        }
        if channel == HLR:
            return hlr_export_row(row, body, name, brand)
        if channel == VIBER and viber:
            return self._viber(row, viber)
        return row

    def _viber(self, row: ExportRow, columns: Sequence[Any]) -> ExportRow:
        """A Viber record's extra columns (`VIBER_RECORD_WIDTH`): img, caption, action, then
        the fallback SMS's record, all None when no fallback SMS was created."""
        img, caption, action, *fallback = columns
        alternative = None
        if fallback and fallback[0] is not None:
            # The same number as the Viber message: it passed the operator filter too.
            alternative = self(fallback)
        return viber_row(row, {"img": img, "Caption": caption, "Action": action}, alternative)

    def render_many(self, records: Sequence[Sequence[Any]]) -> list[ExportRow]:
        rows = []
        for record in records:
            row = self(record)
            if row is not None:
                rows.append(row)
        return rows


# --- HLR and Viber ----------------------------------------------------------------------------

HLR = "hlr"
HLR_ORIGINATOR = "HLR"
SMS = "sms"
VIBER = "viber"
INBOUND = "inbound"  # the channel of an inbound message's record (exports/inbound.py)
# A record's columns: the 12 every message has (`repository.export_query`); a Viber record
# adds img, caption, action and the 12 of its fallback SMS (`repository.with_viber_details`).
RECORD_WIDTH = 12
VIBER_RECORD_WIDTH = RECORD_WIDTH + len(VIBER_FIELDS) + RECORD_WIDTH


def encode_hlr(status: str, network: str | None, ported: bool, roaming: bool) -> str:
    """An HLR result as the one text column the export stream carries (the SQL builds the
    same text in `repository.hlr_export_query`): `status|mccmnc|ported|roaming`."""
    return f"{status}|{network or ''}|{int(ported)}|{int(roaming)}"


def hlr_export_row(row: ExportRow, encoded: str, country_name: str, brand: str) -> ExportRow:
    """An HLR lookup's row: the top-level `mcc`/`mnc` are the network the HLR answered (the
    country's MCC and no MNC when it gave none), `body` the result in the seed's fields.

    Brand and Operator are the carrier the number range was allocated to (libphonenumber);
    the IMSI is never disclosed by the HLR providers Tidings speaks to, so it is None.
    """
    status, network, ported, roaming = [*encoded.split("|"), "", "", "0", "0"][:4]
    mcc, mnc = (network[:3], network[3:]) if network else (row["mcc"], "")
    result = {
        "Country_name": country_name,
        "Brand": brand or None,
        "Operator": brand or None,
        "MCC": mcc,
        "MNC": mnc or None,
        "Status": status.capitalize(),
        "IMSI": None,
        "Ported": int(ported == "1"),
        "Roaming": int(roaming == "1"),
    }
    return hlr_row({**row, "mcc": mcc, "mnc": mnc}, result)


def hlr_body(result: Mapping[str, Any]) -> dict[str, Any]:
    """An HLR result as the seed's `body` object, in its order; missing fields are None."""
    return {field: result.get(field) for field in HLR_BODY_FIELDS}


def hlr_row(row: ExportRow, result: Mapping[str, Any]) -> ExportRow:
    """An HLR request's row: the common fields, `body` replaced by the HLR result."""
    return {**row, "message_type": "hlr", "body": hlr_body(result)}


def viber_row(
    row: ExportRow, extras: Mapping[str, Any], alternative: ExportRow | None
) -> ExportRow:
    """A Viber message's row: its image, button caption and action, and the fallback SMS."""
    shaped = {**row, "message_type": "viber"}
    for field in VIBER_FIELDS:
        shaped[field] = extras.get(field)
    if alternative is not None:
        shaped["alternativeSMS"] = alternative
    return shaped
