"""`/api/dlr`: suppliers report delivery of what we sent them (seeds 001/002).

Parse, authenticate the supplier, hand the reports to the delivery service, render. Every
receipt is stored; one whose message id we do not know yet is kept and applied when the
submit answer carrying that id is recorded, so an unknown id is not an error here.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tidings.api.dlr.auth import authenticated_supplier
from tidings.api.dlr.parsing import ArgumentsRejected, Triple, credentials, parse_triples
from tidings.api.dlr.wire import (
    AUTHENTICATION_FAILED,
    DlrFailure,
    DlrRoute,
    data_response,
    error,
    errors_response,
    read_arguments,
)
from tidings.api.openapi import routes as doc
from tidings.api.state import app_state
from tidings.connectors.base import SupplierReport

router = APIRouter(route_class=DlrRoute, tags=["Supplier DLR (seeds 001/002)"])


@router.get("/api/dlr", **doc.DLR_GET)
@router.post("/api/dlr", **doc.DLR_POST)
async def receive_dlr(request: Request) -> Response:
    state = app_state(request)
    arguments = await read_arguments(request)
    login = credentials(arguments)
    if login is None:
        raise DlrFailure(401, [AUTHENTICATION_FAILED])
    # Arguments are judged only once the caller is known, but parsed outside the transaction.
    parsed: list[Triple] | ArgumentsRejected
    try:
        parsed = parse_triples(arguments)
    except ArgumentsRejected as rejected:
        parsed = rejected

    supplier_id = await authenticated_supplier(request, login)
    if isinstance(parsed, ArgumentsRejected):
        raise parsed
    now = state.clock.now()
    receipt_ids = await state.reports.submit(
        supplier_id,
        [
            SupplierReport(t.message_id, t.status, now, f"supplier reported {t.message_state}")
            for t in parsed
        ],
    )
    return data_response(parsed, receipt_ids)


@router.api_route("/api/dlr", methods=["PUT", "PATCH", "DELETE"], include_in_schema=False)
async def other_methods(request: Request) -> Response:
    answer = errors_response(
        405, [error("method_not_allowed", f"{request.method} is not supported; use POST or GET")]
    )
    answer.headers["Allow"] = "GET, POST"
    return answer
