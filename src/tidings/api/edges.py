"""Answers no route writes itself: unknown paths, and a database that went away outside the
APIs' own route classes. Each is in the format of the API whose paths it falls under
(docs/api.md, "Unknown paths" and "When the database is away"), never FastAPI's
`{"detail": …}` or a bare 500."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.api.client import wire as client_wire
from tidings.api.dlr import wire as dlr_wire
from tidings.api.dr import wire as dr_wire
from tidings.db.outage import RETRY_AFTER_SECONDS, is_connection_error

log = logging.getLogger("tidings.api")

# The seed-004 client API, with and without /rest (api/app.py mounts both). DOTALL: a
# decoded %0A is part of the path too.
_CLIENT = re.compile(r"^/(rest|sms|hlr|viber|stat|message|optout)(/|$)", re.DOTALL)
_DLR = re.compile(r"^/api/(dlr|mo)(/|$)", re.DOTALL)  # the supplier APIs: DLRs, inbound (MO)
_DR = re.compile(r"^/[^/]*/api/dr(/|$)", re.DOTALL)


def api_of(path: str) -> str | None:
    """Which external API a (decoded) request path belongs to: client, dlr, dr or None."""
    if _DLR.match(path):
        return "dlr"
    if _DR.match(path):
        return "dr"
    if _CLIENT.match(path):
        return "client"
    return None


def not_found_answer(path: str) -> Response | None:
    shown = path.encode("unicode_escape").decode("ascii")[:200]  # a decoded %0A shows as \n
    api = api_of(path)
    if api == "client":
        return client_wire.error_response(4, shown)
    if api == "dlr":
        return dlr_wire.errors_response(
            404, [dlr_wire.error("not_found", f"No such resource: {shown}")]
        )
    if api == "dr":
        return dr_wire.error_response(404, "not_found", f"no such resource: {shown}")
    return None


def unavailable_answer(path: str) -> Response:
    api = api_of(path)
    if api == "client":
        return client_wire.unavailable_response()
    if api == "dlr":
        return dlr_wire.unavailable_response()
    if api == "dr":
        return dr_wire.unavailable_response()
    return JSONResponse(
        {"status": "database unavailable"},
        503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_edges(app: FastAPI) -> None:
    async def unknown_path(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code in (404, 405):
            answer = not_found_answer(request.scope.get("path", ""))
            if answer is not None:
                return answer
        return await http_exception_handler(request, error)

    async def unexpected(request: Request, error: Exception) -> Response:
        """Only what no route class caught (the console, /metrics): 503 for an outage."""
        if is_connection_error(error):
            return unavailable_answer(request.scope.get("path", ""))
        return JSONResponse({"status": "internal error"}, 500)

    app.add_exception_handler(StarletteHTTPException, unknown_path)
    app.add_exception_handler(Exception, unexpected)
