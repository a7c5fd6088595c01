"""HTTP Basic credentials in, seed 000's JSON out, and every failure as a small JSON error.

Errors are `{"error": "<code>", "detail": "<text>"}`: `unauthorized` (401, with
`WWW-Authenticate`), `blocked` and `forbidden` (403), `not_found` (404), `internal` (500).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from tidings.api.limits import retry_after_header
from tidings.db.outage import RETRY_AFTER_SECONDS, is_connection_error
from tidings.errors import AuthError, ClientBlocked, NotFound, RateLimited, TidingsError

log = logging.getLogger("tidings.api.dr")

CHALLENGE = 'Basic realm="Tidings delivery reports", charset="UTF-8"'


class Forbidden(Exception):
    """The credentials are fine, but the path names another client."""


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def error_response(
    status_code: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps({"error": code, "detail": detail}),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def unavailable_response() -> Response:
    """503 with Retry-After while the database cannot be reached."""
    return error_response(
        503,
        "unavailable",
        f"the service is temporarily unavailable, retry after {RETRY_AFTER_SECONDS} s",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def basic_credentials(request: Request) -> tuple[str, str]:
    """(login, password) from an `Authorization: Basic …` header; AuthError without one."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise AuthError("HTTP Basic credentials are required")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("the Basic credentials cannot be decoded") from None
    login, colon, password = decoded.partition(":")
    if not colon:
        raise AuthError("the Basic credentials hold no password")
    if "\x00" in decoded:  # no stored login has NUL (PostgreSQL text can't hold it)
        raise AuthError("the Basic credentials are not valid")
    return login, password


class DrRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientBlocked:
                return error_response(403, "blocked", "the account is blocked")
            except AuthError as failure:
                return error_response(
                    401, "unauthorized", failure.message, {"WWW-Authenticate": CHALLENGE}
                )
            except Forbidden as failure:
                return error_response(403, "forbidden", str(failure))
            except NotFound as failure:
                return error_response(404, "not_found", failure.message)
            except RateLimited as failure:
                return error_response(
                    429,
                    "rate_limited",
                    failure.message,
                    {"Retry-After": retry_after_header(failure.retry_after)},
                )
            except TidingsError as failure:
                return error_response(400, "invalid", failure.message)
            except Exception as failure:
                if is_connection_error(failure):  # the database is away: retry later
                    log.warning("database unavailable on %s %s", request.method, request.url.path)
                    return unavailable_response()
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_response(500, "internal", "unexpected error")

        return guarded
