"""What suppliers charge us: the cost CSV import, and the exchange rates between currencies.

`tidings costs import FILE.csv` reads `supplier,type,country,mcc,mnc,cost,currency` rows
(mnc optional; mcc too, for a whole-country cost) and replaces what is stored for each of
the file's suppliers. `tidings fx set EUR USD 1.08` stores 1 EUR = 1.08 USD.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.billing.service import MESSAGE_TYPES
from tidings.db.base import MONEY_SCALE
from tidings.errors import InvalidRequest
from tidings.numbering import CountryTable
from tidings.routing.models import FxRate, Supplier, SupplierCost
from tidings.routing.plan import CostTable, FxTable

CSV_HEADER = ("supplier", "type", "country", "mcc", "mnc", "cost", "currency")


def parse_cost_csv(
    text: str, countries: CountryTable, suppliers: dict[str, int]
) -> list[dict[str, object]]:
    """Rows of the cost CSV; every bad line is reported at once (up to 20)."""
    reader = csv.DictReader(io.StringIO(text))
    names = tuple(name.strip().lower() for name in reader.fieldnames or ())
    if names not in (CSV_HEADER, tuple(n for n in CSV_HEADER if n != "mnc")):
        raise InvalidRequest(f"the header must be {','.join(CSV_HEADER)}", reason="bad_csv")
    rows: list[dict[str, object]] = []
    problems: list[str] = []
    seen: set[tuple[object, ...]] = set()
    for line, raw in enumerate(reader, start=2):
        values = {key.strip().lower(): (value or "").strip() for key, value in raw.items() if key}
        try:
            row = _cost_row(values, countries, suppliers)
        except ValueError as error:
            problems.append(f"line {line}: {error}")
            continue
        key = tuple(row[k] for k in ("supplier_id", "type", "country", "mcc", "mnc"))
        if key in seen:
            problems.append(f"line {line}: the same supplier, type and network twice")
        seen.add(key)
        rows.append(row)
    if problems:
        raise InvalidRequest("; ".join(problems[:20]), reason="bad_csv")
    return rows


def _cost_row(
    values: dict[str, str], countries: CountryTable, suppliers: dict[str, int]
) -> dict[str, object]:
    supplier = values.get("supplier", "")
    supplier_id = suppliers.get(supplier)
    if supplier_id is None and supplier.isdigit() and int(supplier) in suppliers.values():
        supplier_id = int(supplier)
    if supplier_id is None:
        raise ValueError(f"no supplier {supplier!r}")
    type_ = values.get("type", "").lower()
    if type_ not in MESSAGE_TYPES:
        raise ValueError(f"type {type_!r} is not one of {', '.join(MESSAGE_TYPES)}")
    country = countries.by_iso(values.get("country", ""))
    if country is None:
        raise ValueError(f"country {values.get('country')!r} is not an ISO 3166 code with an MCC")
    mcc, mnc = values.get("mcc", ""), values.get("mnc", "")
    if mcc and not (mcc.isdigit() and len(mcc) == 3):
        raise ValueError(f"mcc {mcc!r} is not 3 digits")
    if mcc and mcc not in country.mccs:
        raise ValueError(f"mcc {mcc} is not {country.iso}'s ({', '.join(country.mccs)})")
    if mnc and not (mnc.isdigit() and len(mnc) in (2, 3)):
        raise ValueError(f"mnc {mnc!r} is not 2 or 3 digits")
    if mnc and not mcc:
        raise ValueError("an mnc needs its mcc")
    try:
        cost = Decimal(values.get("cost", ""))
    except InvalidOperation:
        raise ValueError(f"cost {values.get('cost')!r} is not a decimal number") from None
    if not cost.is_finite() or cost < 0 or cost.quantize(MONEY_SCALE) != cost:
        raise ValueError(f"cost {values.get('cost')!r} must be >= 0 with at most 6 decimals")
    currency = values.get("currency", "").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency {values.get('currency')!r} is not an ISO 4217 code")
    return {
        "supplier_id": supplier_id,
        "type": type_,
        "country": country.iso,
        "mcc": mcc,
        "mnc": mnc,
        "cost": cost,
        "currency": currency,
    }


async def import_costs(session: AsyncSession, countries: CountryTable, text: str) -> int:
    """Replace the costs of every supplier named in the file with the file's rows."""
    suppliers = {
        name: supplier_id
        for supplier_id, name in await session.execute(select(Supplier.id, Supplier.name))
    }
    rows = parse_cost_csv(text, countries, suppliers)
    table = cast(Table, SupplierCost.__table__)
    named = sorted({int(str(r["supplier_id"])) for r in rows})
    if named:
        await session.execute(delete(table).where(table.c.supplier_id.in_(named)))
        await session.execute(insert(table), rows)
    return len(rows)


async def load_costs(session: AsyncSession) -> CostTable:
    result = await session.execute(
        select(
            SupplierCost.supplier_id,
            SupplierCost.type,
            SupplierCost.country,
            SupplierCost.mcc,
            SupplierCost.mnc,
            SupplierCost.cost,
            SupplierCost.currency,
        )
    )
    return CostTable(tuple(row) for row in result)


async def list_costs(session: AsyncSession) -> Sequence[SupplierCost]:
    result = await session.execute(
        select(SupplierCost).order_by(
            SupplierCost.supplier_id, SupplierCost.country, SupplierCost.mcc, SupplierCost.mnc
        )
    )
    return result.scalars().all()


def parse_rate(text: str) -> Decimal:
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise InvalidRequest(f"rate {text!r} is not a decimal number", reason="bad_rate") from None
    if not rate.is_finite() or rate <= 0:
        raise InvalidRequest(f"rate {text!r} must be above 0", reason="bad_rate")
    return rate


async def set_rate(
    session: AsyncSession, base: str, quote: str, rate: str, now: datetime
) -> FxRate:
    base, quote = base.upper(), quote.upper()
    for code in (base, quote):
        if len(code) != 3 or not code.isalpha():
            raise InvalidRequest(f"{code!r} is not an ISO 4217 code", reason="bad_currency")
    if base == quote:
        raise InvalidRequest("a rate needs two different currencies", reason="bad_currency")
    value = parse_rate(rate)
    found = await session.get(FxRate, (base, quote))
    if found is None:
        found = FxRate(base=base, quote=quote, rate=str(value), updated_at=now)
        session.add(found)
    else:
        found.rate, found.updated_at = str(value), now
    await session.flush()
    return found


async def load_fx(session: AsyncSession) -> FxTable:
    result = await session.execute(select(FxRate.base, FxRate.quote, FxRate.rate))
    return FxTable((base, quote, Decimal(rate)) for base, quote, rate in result)


async def list_rates(session: AsyncSession) -> Sequence[FxRate]:
    result = await session.execute(select(FxRate).order_by(FxRate.base, FxRate.quote))
    return result.scalars().all()
