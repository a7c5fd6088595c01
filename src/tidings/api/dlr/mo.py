"""`POST /api/mo`: suppliers deliver inbound messages (MO), the way `/api/dlr` takes receipts.

The same credentials (`_login`, `_password`: the supplier's DLR login), the same argument
reading (query string and form or JSON body) and the same JSON:API answers and errors. The
answer is 200 only once the message is stored; the same `supplier_message_id` posted again
is answered 200 with the first one's id and `"duplicate": true`, and stored once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from tidings.api.dlr.auth import authenticated_supplier
from tidings.api.dlr.mo_parsing import parse_mo
from tidings.api.dlr.parsing import ArgumentsRejected, credentials
from tidings.api.dlr.wire import (
    AUTHENTICATION_FAILED,
    DlrFailure,
    DlrRoute,
    document,
    error,
    read_arguments,
)
from tidings.api.dlr.wire import errors_response as _errors
from tidings.api.state import app_state
from tidings.connectors.base import InboundMo
from tidings.db.engine import transaction
from tidings.inbound.service import StoredInbound, receive

router = APIRouter(route_class=DlrRoute, tags=["Supplier MO (inbound messages)"])

_JSON_API = "application/vnd.api+json"
MO_POST: dict[str, Any] = {
    "summary": "Deliver an inbound message (MO) from a handset to one of our numbers",
    "responses": {
        200: {
            "description": "Stored (or stored before: `duplicate`).",
            "content": {_JSON_API: {"schema": {"type": "object", "required": ["data"]}}},
        },
        400: {
            "description": "`missing_argument` / `invalid_argument`: nothing stored.",
            "content": {_JSON_API: {"schema": {"type": "object", "required": ["errors"]}}},
        },
        415: {
            "description": "`unsupported_media_type`: a body that is neither a form nor JSON.",
            "content": {_JSON_API: {"schema": {"type": "object", "required": ["errors"]}}},
        },
    },
    "openapi_extra": {
        "requestBody": {
            "required": False,
            "description": "The arguments (docs/inbound.md); they may come in the query string "
            "too. `_login` and `_password` are the supplier's DLR credentials.",
            "content": {
                media: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "_login": {"type": "string"},
                            "_password": {"type": "string"},
                            "sender": {"type": "string", "example": "380971234567"},
                            "recipient": {"type": "string", "example": "4567"},
                            "text": {"type": "string"},
                            "received_at": {"type": "string", "example": "2026-12-04T16:00:00Z"},
                            "supplier_message_id": {"type": "string", "maxLength": 100},
                        },
                    }
                }
                for media in ("application/json", _JSON_API, "application/x-www-form-urlencoded")
            },
        }
    },
}


@router.post("/api/mo", **MO_POST)
async def receive_mo(request: Request) -> Response:
    state = app_state(request)
    arguments = await read_arguments(request)
    login = credentials(arguments)
    if login is None:
        raise DlrFailure(401, [AUTHENTICATION_FAILED])
    parsed: InboundMo | ArgumentsRejected
    try:
        parsed = parse_mo(arguments, state.clock.now())
    except ArgumentsRejected as rejected:
        parsed = rejected

    supplier_id = await authenticated_supplier(request, login)
    if isinstance(parsed, ArgumentsRejected):
        raise parsed
    async with transaction(state.sessions) as session:
        [stored] = await receive(
            session, state.clock, supplier_id, [parsed], hooks=state.inbound_hooks
        )
    assert stored is not None, "a whole message is always stored"
    if state.metrics is not None:
        state.metrics.inbound_stored(supplier_id, [stored])
    return document({"data": _resource(stored)})


def _resource(stored: StoredInbound) -> dict[str, Any]:
    return {
        "attributes": {"status": "ok", "duplicate": stored.duplicate},
        "id": str(stored.id),
        "type": "mo",
    }


@router.api_route("/api/mo", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def other_methods(request: Request) -> Response:
    answer = _errors(
        405, [error("method_not_allowed", f"{request.method} is not supported; use POST")]
    )
    answer.headers["Allow"] = "POST"
    return answer
