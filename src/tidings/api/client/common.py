"""What the seed-004 products' handlers (SMS, Viber, HLR, statistics) do alike: read a body
then authenticate, answer a quote, a price table, and a test key's made-up status."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Request, Response

from tidings.accounts.service import Caller
from tidings.api.client.render import format_time
from tidings.api.client.wire import json_response, read_payload
from tidings.api.state import app_state
from tidings.billing.service import format_money, price_table
from tidings.db.ids import parse_id
from tidings.errors import InvalidRequest, TidingsError

Parsed = TypeVar("Parsed")


class Priced(Protocol):
    @property
    def total_price(self) -> Decimal: ...

    @property
    def currency(self) -> str: ...


async def read_then_authenticate(
    request: Request, parse: Callable[[Any], Parsed]
) -> tuple[Caller, Parsed]:
    """The body is read and parsed first, but its fault is raised only after authentication:
    a bad key is told before a bad body."""
    state = app_state(request)
    try:
        parsed: Parsed | TidingsError = parse(await read_payload(request))
    except TidingsError as error:
        parsed = error
    caller = await state.callers.authenticate(request.headers.get("x-api-key"))
    if isinstance(parsed, TidingsError):
        raise parsed
    return caller, parsed


def quote_response(quote: Priced) -> Response:
    """`/sms/price`, `/viber/price`: the total, nothing sent or charged."""
    return json_response(
        {"error": "0", "totalprice": format_money(quote.total_price), "currency": quote.currency}
    )


async def price_table_response(request: Request, product: str, tariff_text: str) -> Response:
    """`/{product}/prices/{tariff}`: every country's price of one tariff (0 to 9)."""
    state = app_state(request)
    async with state.sessions() as session:
        await state.callers.authenticate(request.headers.get("x-api-key"))
        tariff = parse_id("1" + tariff_text)  # "1" + text: "0" is a valid tariff, not an id
        if tariff is None or not 10 <= tariff <= 19:
            raise InvalidRequest(f"tariff {tariff_text!r} is not 0 to 9", reason="bad_tariff")
        rows = await price_table(session, state.countries, product, tariff - 10)
    return json_response(
        {
            "error": "0",
            "prices": [
                {
                    "type": row.type,
                    "country": row.country,
                    "country_name": row.country_name,
                    "mcc": row.mcc,
                    "price": format_money(row.price),
                    "currency": row.currency,
                }
                for row in rows
            ],
        }
    )


def add_price_tables(
    router: APIRouter, product: str, default_tariff: int, docs: dict[str, Any]
) -> None:
    """`GET /{product}/prices` (the default tariff's table) and `/{product}/prices/{tariff}`;
    the names keep the document's operation ids what they were."""

    async def default_prices(request: Request) -> Response:
        return await price_table_response(request, product, str(default_tariff))

    async def prices(request: Request, tariff: str) -> Response:
        return await price_table_response(request, product, tariff)

    router.add_api_route(
        f"/{product}/prices", default_prices, name=f"{product}_prices_default", **docs
    )
    router.add_api_route(f"/{product}/prices/{{tariff}}", prices, name=f"{product}_prices", **docs)


def fake_status(
    now: datetime,
    statuses: tuple[str, ...],
    price: str,
    *,
    message_id: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """Test keys get plausible random data, as the seed says: the same for the same key."""
    rng = random.Random(message_id or reference)
    time_in = now - timedelta(seconds=rng.randrange(60, 86_400))
    status = rng.choice(statuses)
    return {
        "error": "0",
        "id": message_id
        if message_id and message_id.isdigit()
        else str(rng.randrange(10**7, 10**8)),
        "msisdn": f"380972{rng.randrange(10**6):06d}",
        "reference": reference or f"test{rng.randrange(10**6)}",
        "time_in": format_time(time_in),
        "time_sent": format_time(time_in + timedelta(seconds=1)),
        "time_dr": None
        if status == "sent"
        else format_time(time_in + timedelta(seconds=rng.randrange(2, 60))),
        "status": status,
        "price": price,
        "currency": "EUR",
    }
