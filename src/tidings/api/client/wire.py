"""Reading requests and writing answers the way seed 004 does.

Bodies may come as JSON (`application/json`, `text/json`, or no content type), as a form
(`multipart/form-data`, `application/x-www-form-urlencoded`), or as a form whose `payload`
field holds the JSON. Answers are JSON; every error is `{"error": "N", "errorDescription": …}`
with the HTTP status from the error table.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

from tidings.api.client.errors import DESCRIPTIONS, SMS_CODES, code_for, http_status
from tidings.api.limits import limit_api_key, retry_after_header
from tidings.db.outage import RETRY_AFTER_SECONDS, is_connection_error
from tidings.errors import InvalidRequest, RateLimited, TidingsError

log = logging.getLogger("tidings.api.client")


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def error_response(code: int, detail: str | None = None) -> Response:
    description = DESCRIPTIONS.get(code, "Error")
    if detail:
        description = f"{description}: {detail}"
    return json_response(
        {"error": str(code), "errorDescription": description}, status_code=http_status(code)
    )


# The code a seed-004 client gets while the database is away: 11 ("too many messages in
# processing") is the one the seed's clients already treat as "try again later".
UNAVAILABLE_CODE = 11


def unavailable_response() -> Response:
    """503 with Retry-After, in seed 004's shape, while the database cannot be reached."""
    response = error_response(
        UNAVAILABLE_CODE,
        f"the service is temporarily unavailable, retry after {RETRY_AFTER_SECONDS} s",
    )
    response.status_code = 503
    response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    return response


def rate_limited_response(code: int, error: RateLimited) -> Response:
    response = error_response(code, error.message)
    response.headers["retry-after"] = retry_after_header(error.retry_after)
    return response


class ClientApiRoute(APIRoute):
    """Turns every failure of a seed-004 endpoint into seed 004's error shape, after the
    client's request rate limit. A product with codes of its own (Viber, HLR) subclasses it
    with its `codes` table; /openapi.json then documents its routes as seed 004's too."""

    codes: ClassVar[dict[str, int]] = SMS_CODES

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                await limit_api_key(request)
                return await handler(request)
            except TidingsError as error:
                return self.error_answer(code_for(error, self.codes), error)
            except Exception as error:
                if is_connection_error(error):  # the database is away: retry later
                    log.warning("database unavailable on %s %s", request.method, request.url.path)
                    return unavailable_response()
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_response(5)

        return guarded

    def error_answer(self, code: int, error: TidingsError) -> Response:
        """The answer to a domain error; a product may add to it (a header, say)."""
        if isinstance(error, RateLimited):
            return rate_limited_response(code, error)
        return error_response(code, error.message)


async def read_payload(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_form(request)
    body = await request.body()
    if content_type == "application/x-www-form-urlencoded" and body.lstrip()[:1] not in (
        b"{",
        b"[",
    ):
        return await _read_form(request)
    # JSON sent without a JSON content type (curl -d does that) is still JSON.
    if not body.strip():
        raise InvalidRequest("the request has no body", reason="bad_payload")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"the body is not JSON ({error})", reason="bad_payload") from None


async def _read_form(request: Request) -> Any:
    try:
        form = await request.form()
    except Exception as error:  # malformed multipart bodies raise parser-specific errors
        raise InvalidRequest(f"the form cannot be read ({error})", reason="bad_payload") from None
    fields: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                fields[key] = (await value.read()).decode("utf-8", "replace")
            else:
                fields[key] = value
    finally:
        await form.close()  # uploaded parts are spooled to temporary files
    if "payload" in fields:
        try:
            return orjson.loads(fields["payload"])
        except orjson.JSONDecodeError:
            raise InvalidRequest("the payload field is not JSON", reason="bad_payload") from None
    # Structured fields (arrays, objects) arrive as JSON text inside a form.
    for key, value in fields.items():
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                fields[key] = orjson.loads(value)
    return fields
