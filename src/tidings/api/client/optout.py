"""The client's opt-out list over seed 004's conventions (X-API-KEY, its error shape).

    GET    /rest/optout?limit=&after=   a page of the list, in msisdn order
    GET    /rest/optout/{msisdn}        whether one number is on it
    POST   /rest/optout                 {"msisdn": …} or {"msisdns": […]}: put them on it
    DELETE /rest/optout                 the same body: take them off
    DELETE /rest/optout/{msisdn}        take one off

Also without `/rest`, like every seed-004 path. Numbers are normalised as SMS destinations
are (error 21 for one that is no valid mobile number; a list with one is refused whole).
Test keys are checked the same and change nothing, as everywhere in seed 004: they see an
empty list, and their additions and removals answer as if made (docs/optouts.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from tidings.accounts.service import Caller
from tidings.api.client import optout_docs as doc
from tidings.api.client.common import read_then_authenticate
from tidings.api.client.parsing import parse_msisdn_field
from tidings.api.client.render import format_time
from tidings.api.client.wire import ClientApiRoute, json_response
from tidings.api.state import app_state
from tidings.db.engine import transaction
from tidings.errors import InvalidRequest
from tidings.optouts.models import OptOut
from tidings.optouts.service import (
    API,
    MAX_PAGE,
    add_numbers,
    find_number,
    list_numbers,
    normalize_msisdn,
    remove_numbers,
)

DEFAULT_PAGE = 1_000


def parse_numbers(payload: Any, limit: int) -> list[str]:
    """`{"msisdn": …}` or `{"msisdns": […]}`, normalised, each once."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object", reason="bad_payload")
    if "msisdns" in payload:
        raw = payload["msisdns"]
        if not isinstance(raw, list) or not raw:
            raise InvalidRequest("msisdns must be a non-empty array", reason="bad_payload")
        if len(raw) > limit:
            raise InvalidRequest(
                f"{len(raw)} numbers exceed the batch maximum of {limit}",
                reason="batch_too_large",
            )
        numbers = [
            normalize_msisdn(parse_msisdn_field(value, i), where=f"msisdns[{i}]: ")
            for i, value in enumerate(raw)
        ]
    elif "msisdn" in payload:
        numbers = [normalize_msisdn(parse_msisdn_field(payload["msisdn"], None))]
    else:
        raise InvalidRequest("msisdn or msisdns is required", reason="missing")
    return list(dict.fromkeys(numbers))


def _entry(optout: OptOut) -> dict[str, Any]:
    return {
        "msisdn": optout.msisdn,
        "source": optout.source,
        "created_at": format_time(optout.created_at),
    }


def _result(numbers: list[str], changed: list[str], yes: str, no: str) -> dict[str, Any]:
    done = set(changed)
    return {
        "error": "0",
        "result": [{"msisdn": n, "status": yes if n in done else no} for n in numbers],
    }


def _page_arguments(request: Request) -> tuple[str | None, int]:
    query = request.query_params
    after = query.get("after") or None
    text = query.get("limit", str(DEFAULT_PAGE))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise InvalidRequest(f"limit must be a number from 1 to {MAX_PAGE}", field="limit")
    return after, int(text)


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, route_class=ClientApiRoute, tags=["Opt-outs"])

    @router.get("/optout", **doc.OPTOUT_LIST)
    async def list_optouts(request: Request) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        after, limit = _page_arguments(request)
        if caller.is_test:
            return json_response({"error": "0", "optouts": [], "next": None})
        async with state.sessions() as session:
            page = await list_numbers(session, caller.client_id, after=after, limit=limit)
        last = page[-1].msisdn if len(page) == limit else None
        return json_response({"error": "0", "optouts": [_entry(o) for o in page], "next": last})

    @router.get("/optout/{msisdn}", **doc.OPTOUT_ONE)
    async def one_optout(request: Request, msisdn: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        number = normalize_msisdn(msisdn)
        found: OptOut | None = None
        if not caller.is_test:
            async with state.sessions() as session:
                found = await find_number(session, caller.client_id, number)
        if found is not None:
            return json_response({"error": "0", "opted_out": True, **_entry(found)})
        return json_response({"error": "0", "msisdn": number, "opted_out": False})

    @router.post("/optout", **doc.OPTOUT_ADD)
    async def add_optouts(request: Request) -> Response:
        state = app_state(request)
        caller, numbers = await _read_numbers(request)
        if caller.is_test:
            return json_response(_result(numbers, numbers, "added", "listed"))
        async with transaction(state.sessions) as session:
            change = await add_numbers(
                session, caller.client_id, numbers, source=API, now=state.clock.now()
            )
        return json_response(_result(change.msisdns, change.changed, "added", "listed"))

    @router.delete("/optout", **doc.OPTOUT_REMOVE)
    async def remove_optouts(request: Request) -> Response:
        caller, numbers = await _read_numbers(request)
        return await _remove(request, caller, numbers)

    @router.delete("/optout/{msisdn}", **doc.OPTOUT_REMOVE_ONE)
    async def remove_optout(request: Request, msisdn: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        return await _remove(request, caller, [normalize_msisdn(msisdn)])

    return router


async def _read_numbers(request: Request) -> tuple[Caller, list[str]]:
    limit = app_state(request).limits.max_batch_size
    return await read_then_authenticate(request, lambda payload: parse_numbers(payload, limit))


async def _remove(request: Request, caller: Caller, numbers: list[str]) -> Response:
    state = app_state(request)
    if caller.is_test:
        return json_response(_result(numbers, numbers, "removed", "not_listed"))
    async with transaction(state.sessions) as session:
        change = await remove_numbers(session, caller.client_id, numbers)
    return json_response(_result(change.msisdns, change.changed, "removed", "not_listed"))
