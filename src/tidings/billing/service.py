"""Price lists: import, lookup, and the unit of money arithmetic."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.billing.repository import PriceRepository
from tidings.db.base import MONEY_SCALE
from tidings.errors import InvalidRequest, PricingError
from tidings.numbering import CountryTable

MESSAGE_TYPES = ("sms", "viber", "hlr")
CSV_HEADER = ("type", "tariff", "country", "price", "currency")


@dataclass(frozen=True, slots=True)
class PriceRow:
    type: str
    tariff: int
    country: str
    country_name: str
    mcc: str
    price: Decimal
    currency: str


def format_money(amount: Decimal) -> str:
    """Plain decimal text with at least two places: 0.02, 0.0025, 12.50 (no exponent)."""
    normalized = amount.quantize(MONEY_SCALE).normalize()
    if normalized.as_tuple().exponent > -2:  # type: ignore[operator]
        normalized = normalized.quantize(Decimal("0.01"))
    return f"{normalized:f}"


async def price_table(
    session: AsyncSession, countries: CountryTable, type_: str, tariff: int
) -> list[PriceRow]:
    prices = await PriceRepository(session).for_tariff(type_, tariff)
    if not prices:
        raise PricingError(f"no {type_} prices in tariff {tariff}", reason="unknown_tariff")
    rows = []
    for price in prices:
        country = countries.by_iso(price.country)
        rows.append(
            PriceRow(
                type=price.type,
                tariff=price.tariff,
                country=price.country,
                country_name=country.name if country else price.country,
                mcc=price.mcc,
                price=price.price,
                currency=price.currency,
            )
        )
    return rows


def parse_price_csv(text: str, countries: CountryTable) -> list[dict[str, object]]:
    """Rows of `type,tariff,country,price,currency`; every bad line is reported at once."""
    reader = csv.DictReader(io.StringIO(text))
    if (
        reader.fieldnames is None
        or tuple(name.strip().lower() for name in reader.fieldnames) != CSV_HEADER
    ):
        raise InvalidRequest(f"the header must be {','.join(CSV_HEADER)}", reason="bad_csv")
    rows: list[dict[str, object]] = []
    problems: list[str] = []
    seen: set[tuple[str, int, str]] = set()
    for line, raw in enumerate(reader, start=2):
        values = {key.strip().lower(): (value or "").strip() for key, value in raw.items() if key}
        try:
            row = _price_row(values, countries)
        except ValueError as error:
            problems.append(f"line {line}: {error}")
            continue
        key = (str(row["type"]), int(str(row["tariff"])), str(row["country"]))
        if key in seen:
            problems.append(f"line {line}: {key} appears twice")
        seen.add(key)
        rows.append(row)
    if problems:
        raise InvalidRequest("; ".join(problems[:20]), reason="bad_csv")
    return rows


def _price_row(values: dict[str, str], countries: CountryTable) -> dict[str, object]:
    type_ = values["type"].lower()
    if type_ not in MESSAGE_TYPES:
        raise ValueError(f"type {type_!r} is not one of {', '.join(MESSAGE_TYPES)}")
    try:
        tariff = int(values["tariff"])
    except ValueError:
        raise ValueError(f"tariff {values['tariff']!r} is not a number") from None
    if not 0 <= tariff <= 9:
        raise ValueError(f"tariff {tariff} is not 0 to 9")
    country = countries.by_iso(values["country"])
    if country is None:
        raise ValueError(f"country {values['country']!r} is not an ISO 3166 code with an MCC")
    try:
        price = Decimal(values["price"])
    except InvalidOperation:
        raise ValueError(f"price {values['price']!r} is not a decimal number") from None
    if not price.is_finite() or price < 0 or price.quantize(MONEY_SCALE) != price:
        raise ValueError(f"price {values['price']!r} must be >= 0 with at most 6 decimals")
    currency = values["currency"].upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency {values['currency']!r} is not an ISO 4217 code")
    return {
        "type": type_,
        "tariff": tariff,
        "country": country.iso,
        "mcc": country.mcc,
        "price": price,
        "currency": currency,
    }


async def import_prices(session: AsyncSession, countries: CountryTable, text: str) -> int:
    rows = parse_price_csv(text, countries)
    await PriceRepository(session).replace(rows)
    return len(rows)
