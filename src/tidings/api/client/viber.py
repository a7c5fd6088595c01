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

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError

from tidings.api.client import viber_docs as doc
from tidings.api.client.common import (
    add_price_tables,
    fake_status,
    quote_response,
    read_then_authenticate,
)
from tidings.api.client.errors import DESCRIPTIONS, VIBER_CODES, code_for
from tidings.api.client.render import viber_status_body
from tidings.api.client.viber_parsing import EXTERNAL_ID, parse_viber_request
from tidings.api.client.wire import ClientApiRoute, json_response
from tidings.api.openapi.routes import USE_PUT_OR_POST
from tidings.api.state import AppState, app_state
from tidings.billing.service import format_money
from tidings.db.engine import transaction
from tidings.db.ids import parse_id
from tidings.db.replica import read_with_fallback
from tidings.errors import Conflict, InvalidRequest, NotFound
from tidings.viber.acceptance import (
    ViberAcceptance,
    ViberRequest,
    check_senders,
    fake_viber_acceptance,
    prepare_viber,
    quote_viber,
    write_viber,
)
from tidings.viber.queries import ViberView, get_viber, get_viber_by_reference


class ViberApiRoute(ClientApiRoute):
    """Seed 004's error shape, with the Viber codes (40-51)."""

    codes = VIBER_CODES


def _viber_parser(state: AppState) -> Callable[[Any], ViberRequest]:
    return lambda payload: parse_viber_request(payload, state.clock.now())


def _created(accepted: ViberAcceptance) -> list[dict[str, Any]]:
    """The seed's answer: an array holding one object; `reference` only where one was given."""
    messages: list[dict[str, str]] = []
    for item in accepted.items:
        entry = {"id": str(item.id)}
        if item.reference is not None:
            entry["reference"] = item.reference
        entry["price"] = format_money(item.price)
        entry["currency"] = item.currency
        messages.append(entry)
    # A recipient refused on its own (opted out) keeps its place, with its error instead of
    # an id and a price (docs/optouts.md).
    for refused in sorted(accepted.refused, key=lambda r: r.index):
        code = code_for(refused.error, VIBER_CODES)
        entry = {"msisdn": refused.msisdn}
        if refused.reference is not None:
            entry["reference"] = refused.reference
        entry["error"] = str(code)
        entry["errorDescription"] = f"{DESCRIPTIONS[code]}: {refused.error.message}"
        messages.insert(refused.index, entry)
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

    @router.put("/viber/create", **doc.VIBER_CREATE)
    @router.post("/viber/create", **doc.VIBER_CREATE)
    async def create_viber(request: Request) -> Response:
        state = app_state(request)
        caller, parsed = await read_then_authenticate(request, _viber_parser(state))
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
            gone = {r.index for r in accepted.refused}
            state.metrics.count_accepted(
                caller.client_id,
                "viber",
                (
                    (p.supplier_id, p.destination.iso)
                    for index, p in enumerate(prepared.quote.items)
                    if index not in gone
                ),
            )
            state.metrics.optout_refused(caller.client_id, "viber", len(gone))
        return json_response(_created(accepted))

    @router.put("/viber/price", **doc.VIBER_PRICE)
    @router.post("/viber/price", **doc.VIBER_PRICE)
    async def price_viber(request: Request) -> Response:
        state = app_state(request)
        caller, parsed = await read_then_authenticate(request, _viber_parser(state))
        return quote_response(quote_viber(await state.catalog.get(), caller, parsed, state.limits))

    add_price_tables(router, "viber", 0, doc.VIBER_PRICES)

    @router.get("/viber/create", **USE_PUT_OR_POST)
    @router.get("/viber/price", **USE_PUT_OR_POST)
    async def create_by_get(request: Request) -> Response:
        raise InvalidRequest("use PUT or POST", reason="unsupported")

    @router.get("/viber/reference/{reference:path}", **doc.VIBER_STATUS)
    async def viber_by_reference(request: Request, reference: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response(_fake_status(state.clock.now(), reference=reference))
        if not EXTERNAL_ID.fullmatch(reference):  # no such reference can have been stored
            raise NotFound(f"no Viber message {reference!r}", reason="message_not_found")
        view = await read_with_fallback(
            state.reads,
            state.sessions,
            lambda session: get_viber_by_reference(session, caller.client_id, reference),
        )
        return json_response(_status(view))

    @router.get("/viber/{message_id}", **doc.VIBER_STATUS)
    async def viber_by_id(request: Request, message_id: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response(_fake_status(state.clock.now(), message_id=message_id))
        number = parse_id(message_id)
        if number is None:
            raise NotFound(f"no Viber message {message_id!r}", reason="message_not_found")
        view = await read_with_fallback(
            state.reads,
            state.sessions,
            lambda session: get_viber(session, caller.client_id, number),
        )
        return json_response(_status(view))

    return router


def _status(view: ViberView) -> dict[str, Any]:
    return viber_status_body(view.message, view.fallback)


_FAKE_STATUSES = ("read", "delivered", "delivered", "sent", "not-viber-user", "expired")


def _fake_status(
    now: datetime, *, message_id: str | None = None, reference: str | None = None
) -> dict[str, Any]:
    body = fake_status(now, _FAKE_STATUSES, "0.01", message_id=message_id, reference=reference)
    body["message_type"] = "viber"
    return body
