"""Seed 004's HLR endpoints (docs/hlr.md), under `/rest` and at the root:

PUT|POST /hlr/create              single (form fields) or bulk (`payload`: a JSON array)
GET      /hlr/{id}                the result; at the root a reference is tried too
GET      /hlr/reference/{ref}     the result, by the client's reference
GET      /hlr/prices[/{tariff}]   the HLR price table (tariff 9 when not given)
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.api.client.common import add_price_tables, read_then_authenticate
from tidings.api.client.errors import HLR_CODES
from tidings.api.client.hlr_docs import HLR_CREATE, HLR_PRICES, HLR_RESULT
from tidings.api.client.hlr_parsing import parse_hlr_request
from tidings.api.client.parsing import REFERENCE
from tidings.api.client.wire import ClientApiRoute, error_response, json_response
from tidings.api.openapi.routes import USE_PUT_OR_POST
from tidings.api.state import app_state
from tidings.billing.service import format_money
from tidings.connectors.hlr.base import FINAL_STATUSES
from tidings.db.engine import transaction
from tidings.db.ids import MAX_ROW_ID, parse_id
from tidings.db.replica import read_with_fallback
from tidings.errors import InvalidRequest, NotFound
from tidings.hlr.models import HlrLookup
from tidings.hlr.service import (
    HLR,
    HlrAcceptance,
    accept_hlr,
    fake_hlr_acceptance,
    find_lookup,
    find_lookup_by_reference,
    prepare_hlr,
)
from tidings.hlr.wire import iso_time, result_body

DEFAULT_PRICE_TARIFF = 9  # "by default 9 (Best quality tariff)", for the price table only


class HlrApiRoute(ClientApiRoute):
    """Seed 004's error shape, with the HLR codes (60-66), after the request rate limit."""

    codes = HLR_CODES


def _wake_worker(request: Request) -> None:
    wake: Callable[[], None] | None = getattr(request.app.state, "hlr_wake", None)
    if wake is not None:
        wake()


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, route_class=HlrApiRoute, tags=["HLR (seed 004)"])

    @router.put("/hlr/create", **HLR_CREATE)
    @router.post("/hlr/create", **HLR_CREATE)
    async def create_hlr(request: Request) -> Response:
        state = app_state(request)
        caller, parsed = await read_then_authenticate(request, parse_hlr_request)
        prepared = prepare_hlr(
            await state.catalog.get(), caller, parsed, state.limits.max_batch_size
        )
        if caller.is_test:
            accepted = fake_hlr_acceptance(prepared)
        else:
            async with transaction(state.sessions) as session:
                accepted = await accept_hlr(session, state.clock, prepared)
            _wake_worker(request)
        if not parsed.is_batch:
            item = accepted.items[0]
            return json_response(
                {
                    "error": "0",
                    "id": str(item.id),
                    "price": format_money(item.price),
                    "currency": item.currency,
                }
            )
        return json_response(_bulk_body(accepted))

    @router.get("/hlr/create", **USE_PUT_OR_POST)
    async def create_by_get(request: Request) -> Response:
        raise InvalidRequest("use PUT or POST", reason="unsupported")

    add_price_tables(router, HLR, DEFAULT_PRICE_TARIFF, HLR_PRICES)

    @router.get("/hlr/reference/{reference:path}", **HLR_RESULT)
    async def hlr_by_reference(request: Request, reference: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response(_fake_result(reference, state.clock.now()))
        if not REFERENCE.fullmatch(reference):  # no such reference can have been stored
            raise NotFound(f"no HLR request {reference!r}", reason="hlr_not_found")
        lookup = await read_with_fallback(
            state.reads,
            state.sessions,
            lambda session: find_lookup_by_reference(session, caller.client_id, reference),
        )
        return json_response(result_body(lookup))

    @router.get("/hlr/{key}", **HLR_RESULT)
    async def hlr_by_id(request: Request, key: str) -> Response:
        """An id; failing that, a reference (the seed's URL for the reference form is
        `/hlr/{reference}` too)."""
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response(_fake_result(key, state.clock.now()))
        number = parse_id(key, MAX_ROW_ID)

        async def find(session: AsyncSession) -> HlrLookup:
            if number is not None:
                with contextlib.suppress(NotFound):
                    return await find_lookup(session, caller.client_id, number)
            if not REFERENCE.fullmatch(key):
                raise NotFound(f"no HLR request {key!r}", reason="hlr_not_found")
            return await find_lookup_by_reference(session, caller.client_id, key)

        lookup = await read_with_fallback(state.reads, state.sessions, find)
        return json_response(result_body(lookup))

    @router.api_route(
        "/hlr/{path:path}",
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
    async def unsupported(request: Request, path: str) -> Response:
        return error_response(4, f"{prefix}/hlr/{path}")

    return router


def _bulk_body(accepted: HlrAcceptance) -> dict[str, Any]:
    result: list[dict[str, Any]] = []
    for item in accepted.items:
        if item.duplicate:
            result.append(
                {
                    "reference": item.reference,
                    "id": str(item.id),
                    "error": "63",
                    "errorDescription": "HLR already exists",
                }
            )
        else:
            result.append(
                {
                    "reference": item.reference,
                    "id": str(item.id),
                    "error": "0",
                    "price": format_money(item.price),
                    "currency": item.currency,
                }
            )
    return {
        "result": result,
        "error": "0",
        "totalprice": format_money(accepted.total_price),
        "currency": accepted.currency,
    }


def _fake_result(key: str, now: datetime) -> dict[str, Any]:
    """Test keys get plausible random data, as the seed says for every test-key request."""
    rng = random.Random(key)
    created = now - timedelta(seconds=rng.randrange(60, 86_400))
    status = rng.choice(FINAL_STATUSES)
    network = f"255{rng.choice(('01', '03', '06'))}" if status in ("active", "absent") else None
    return {
        "id": key if key.isdigit() else str(rng.randrange(10**7, 10**8)),
        "reference": key if not key.isdigit() else f"test{rng.randrange(10**6)}",
        "msisdn": f"380{rng.choice(('50', '67', '93'))}{rng.randrange(10**7):07d}",
        "network": network or "unknown",
        "status": status,
        "details": {
            "ported": str(int(rng.random() < 0.1)),
            "roaming": str(int(rng.random() < 0.05)),
        },
        "createdDatetime": iso_time(created),
        "statusDatetime": iso_time(created + timedelta(seconds=rng.randrange(1, 10))),
    }
