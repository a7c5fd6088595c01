"""Seed 004's Viber endpoints: create, price, status by id / reference, price tables.

    PUT|POST /rest/viber/create          [{"error": "0", "messages": […], "total_price", …}]
    PUT|POST /rest/viber/price           {"error": "0", "totalprice", "currency"}
    GET      /rest/viber/{id}            the status (with "alternativeSMS" once it was sent)
    GET      /rest/viber/reference/{ref}
    GET      /rest/viber/prices/{tariff}

Also without `/rest`, like the SMS endpoints. Errors are seed 004's shape with the Viber
codes (40-51, docs/viber.md).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError

from tidings.api.client.errors import VIBER_CODES, code_for
from tidings.api.client.parsing import parse_id
from tidings.api.client.render import format_time, viber_status_body
from tidings.api.client.viber_parsing import EXTERNAL_ID, parse_viber_request
from tidings.api.client.wire import error_response, json_response, read_payload
from tidings.api.state import AppState, app_state
from tidings.billing.service import format_money, price_table
from tidings.db.engine import transaction
from tidings.errors import Conflict, InvalidRequest, NotFound, TidingsError
from tidings.viber.acceptance import (
    ViberAcceptance,
    check_senders,
    fake_viber_acceptance,
    prepare_viber,
    quote_viber,
    write_viber,
)
from tidings.viber.queries import ViberView, get_viber, get_viber_by_reference

log = logging.getLogger("tidings.api.client")


class ViberApiRoute(APIRoute):
    """Seed 004's error shape, with the Viber codes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except TidingsError as error:
                return error_response(code_for(error, VIBER_CODES), error.message)
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_response(5)

        return guarded


async def _parse_or_error(request: Request, state: AppState) -> Any:
    """Parse before authenticating; hand back the error to raise after authentication."""
    try:
        return parse_viber_request(await read_payload(request), state.clock.now())
    except TidingsError as error:
        return error


def _created(accepted: ViberAcceptance) -> list[dict[str, Any]]:
    """The seed's answer: an array holding one object; `reference` only where one was given."""
    messages = []
    for item in accepted.items:
        entry = {"id": str(item.id)}
        if item.reference is not None:
            entry["reference"] = item.reference
        entry["price"] = format_money(item.price)
        entry["currency"] = item.currency
        messages.append(entry)
    return [
        {
            "error": "0",
            "messages": messages,
            "total_price": format_money(accepted.total_price),
            "currency": accepted.currency,
        }
    ]


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, route_class=ViberApiRoute, tags=["Viber (seed 004)"])

    @router.api_route("/viber/create", methods=["PUT", "POST"])
    async def create_viber(request: Request) -> Response:
        state = app_state(request)
        parsed = await _parse_or_error(request, state)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if isinstance(parsed, TidingsError):
            raise parsed
        prepared = prepare_viber(await state.catalog.get(), caller, parsed, state.limits)
        if caller.is_test:
            async with state.sessions() as session:
                await check_senders(session, caller, parsed)
            return json_response(_created(fake_viber_acceptance(prepared)))
        try:
            async with transaction(state.sessions) as session:
                accepted = await write_viber(session, state.clock, prepared)
        except IntegrityError:  # a concurrent request took an external_id after our check
            raise Conflict("an external_id is used already", reason="duplicate_reference") from None
        if state.metrics is not None:
            state.metrics.count_accepted(
                caller.client_id,
                "viber",
                ((p.supplier_id, p.destination.iso) for p in prepared.quote.items),
            )
        return json_response(_created(accepted))

    @router.api_route("/viber/price", methods=["PUT", "POST"])
    async def price_viber(request: Request) -> Response:
        state = app_state(request)
        parsed = await _parse_or_error(request, state)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if isinstance(parsed, TidingsError):
            raise parsed
        quote = quote_viber(await state.catalog.get(), caller, parsed, state.limits)
        return json_response(
            {
                "error": "0",
                "totalprice": format_money(quote.total_price),
                "currency": quote.currency,
            }
        )

    async def _prices(request: Request, tariff_text: str) -> Response:
        state = app_state(request)
        async with state.sessions() as session:
            await state.callers.authenticate(request.headers.get("x-api-key"))
            tariff = parse_id("1" + tariff_text)  # "1" + text: "0" is a valid tariff, not an id
            if tariff is None or not 10 <= tariff <= 19:
                raise InvalidRequest(f"tariff {tariff_text!r} is not 0 to 9", reason="bad_tariff")
            rows = await price_table(session, state.countries, "viber", tariff - 10)
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

    @router.get("/viber/prices")
    async def viber_prices_default(request: Request) -> Response:
        return await _prices(request, "0")

    @router.get("/viber/prices/{tariff}")
    async def viber_prices(request: Request, tariff: str) -> Response:
        return await _prices(request, tariff)

    @router.get("/viber/create")
    @router.get("/viber/price")
    async def create_by_get(request: Request) -> Response:
        raise InvalidRequest("use PUT or POST", reason="unsupported")

    @router.get("/viber/reference/{reference}")
    async def viber_by_reference(request: Request, reference: str) -> Response:
        state = app_state(request)
        async with state.sessions() as session:
            caller = await state.callers.authenticate(request.headers.get("x-api-key"))
            if caller.is_test:
                return json_response(_fake_status(state.clock.now(), reference=reference))
            if not EXTERNAL_ID.fullmatch(reference):  # no such reference can have been stored
                raise NotFound(f"no Viber message {reference!r}", reason="message_not_found")
            view = await get_viber_by_reference(session, caller.client_id, reference)
        return json_response(_status(view))

    @router.get("/viber/{message_id}")
    async def viber_by_id(request: Request, message_id: str) -> Response:
        state = app_state(request)
        async with state.sessions() as session:
            caller = await state.callers.authenticate(request.headers.get("x-api-key"))
            if caller.is_test:
                return json_response(_fake_status(state.clock.now(), message_id=message_id))
            number = parse_id(message_id)
            if number is None:
                raise NotFound(f"no Viber message {message_id!r}", reason="message_not_found")
            view = await get_viber(session, caller.client_id, number)
        return json_response(_status(view))

    return router


def _status(view: ViberView) -> dict[str, Any]:
    return viber_status_body(view.message, view.fallback)


_FAKE_STATUSES = ("read", "delivered", "delivered", "sent", "not-viber-user", "expired")


def _fake_status(
    now: datetime, *, message_id: str | None = None, reference: str | None = None
) -> dict[str, Any]:
    """Test keys get plausible random data, as the seed says."""
    rng = random.Random(message_id or reference)
    time_in = now - timedelta(seconds=rng.randrange(60, 86_400))
    status = rng.choice(_FAKE_STATUSES)
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
        "price": "0.01",
        "currency": "EUR",
        "message_type": "viber",
    }
