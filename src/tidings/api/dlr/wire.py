"""Reading /api/dlr arguments and writing JSON:API answers, the way seeds 001/002 do.

Arguments come from the query string and from the body together (query first): a form
(`application/x-www-form-urlencoded`, `multipart/form-data`) or a JSON object
(`application/json`, `application/vnd.api+json`, or no content type). Answers are JSON:API
documents (`application/vnd.api+json`) holding either `data` or `errors`, never both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

from tidings.api.dlr.parsing import (
    INVALID,
    MAX_TRIPLES,
    ArgumentsRejected,
    Problem,
    Triple,
    pairs_from_json,
)
from tidings.api.limits import retry_after_header
from tidings.db.outage import RETRY_AFTER_SECONDS, is_connection_error
from tidings.errors import AuthError, InvalidRequest, RateLimited, TidingsError

log = logging.getLogger("tidings.api.dlr")

MEDIA_TYPE = "application/vnd.api+json"
_JSON_TYPES = frozenset({"application/json", "application/vnd.api+json", "text/json"})
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
# Three arguments per triple, the credentials, and room for arguments we ignore.
_MAX_FIELDS = 4 * MAX_TRIPLES

TITLES: dict[str, str] = {
    "authentication": "Authentication error",
    "missing_argument": "Missing argument",
    "invalid_argument": "Invalid argument",
    "unsupported_media_type": "Unsupported media type",
    "method_not_allowed": "Method not allowed",
    "payload_too_large": "Payload too large",
    "rate_limited": "Too many requests",
    "not_found": "Not found",
    "unavailable": "Service unavailable",
    "internal": "Internal error",
}


class DlrFailure(Exception):
    """An answer made of JSON:API errors, with its HTTP status."""

    def __init__(self, status_code: int, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__(errors[0]["detail"] if errors else "error")
        self.status_code = status_code
        self.errors = list(errors)


def error(code: str, detail: str) -> dict[str, Any]:
    return {"code": code, "detail": detail, "title": TITLES[code]}


def problem_error(problem: Problem) -> dict[str, Any]:
    body = error(problem.code, problem.detail)
    body["source"] = {"parameter": problem.parameter}
    if problem.position is not None:
        body["meta"] = {"position": problem.position}
    return body


def document(content: dict[str, Any], status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type=MEDIA_TYPE)


def errors_response(status_code: int, errors: Sequence[dict[str, Any]]) -> Response:
    return document({"errors": list(errors)}, status_code)


def unavailable_response() -> Response:
    """503 with Retry-After, as JSON:API errors, while the database cannot be reached."""
    answer = errors_response(
        503,
        [
            error(
                "unavailable",
                "The receipts were not stored: the service is temporarily unavailable, "
                f"retry after {RETRY_AFTER_SECONDS} s",
            )
        ],
    )
    answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return answer


AUTHENTICATION_FAILED = error("authentication", "Please check your login and password")


def data_response(triples: Sequence[Triple], receipt_ids: Sequence[int]) -> Response:
    """One resource object for a one-triple request, an array of them for several."""
    items = [_resource(t, rid) for t, rid in zip(triples, receipt_ids, strict=True)]
    return document({"data": items[0] if len(items) == 1 else items})


def _resource(triple: Triple, receipt_id: int) -> dict[str, Any]:
    resource: dict[str, Any] = {"attributes": {"status": "ok"}, "id": str(receipt_id)}
    if triple.request_id is not None:
        resource["meta"] = {"request_id": triple.request_id}
    resource["type"] = "dlr"
    return resource


class DlrRoute(APIRoute):
    """Turns every failure of /api/dlr into JSON:API errors; only real faults are 500."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except DlrFailure as failure:
                return errors_response(failure.status_code, failure.errors)
            except ArgumentsRejected as rejected:
                return errors_response(400, [problem_error(p) for p in rejected.problems])
            except AuthError:
                return errors_response(401, [AUTHENTICATION_FAILED])
            except RateLimited as limited:
                answer = errors_response(429, [error("rate_limited", limited.message)])
                answer.headers["Retry-After"] = retry_after_header(limited.retry_after)
                return answer
            except InvalidRequest as invalid:
                return errors_response(400, [error(INVALID, invalid.message)])
            except TidingsError as failure:
                log.warning("DLR refused: %s", failure.message)
                return errors_response(400, [error(INVALID, failure.message)])
            except Exception as failure:
                if is_connection_error(failure):  # the database is away: retry later
                    log.warning("database unavailable on %s %s", request.method, request.url.path)
                    return unavailable_response()
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return errors_response(
                    500, [error("internal", "The receipts were not stored; please retry")]
                )

        return guarded


async def read_arguments(request: Request) -> list[tuple[str, str]]:
    """The query string's arguments, then the body's, in the order they were written."""
    pairs = list(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == _MULTIPART:
        return pairs + await _read_multipart(request)
    body = await request.body()
    if not body.strip():
        return pairs
    if content_type == _FORM:
        text = body.decode("utf-8", "replace")
        try:
            return pairs + parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
        except ValueError:
            raise DlrFailure(400, [error(INVALID, "the form has too many fields")]) from None
    if content_type in _JSON_TYPES or (not content_type and body.lstrip()[:1] == b"{"):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as bad:
            raise DlrFailure(400, [error(INVALID, f"the body is not JSON ({bad})")]) from None
        return pairs + pairs_from_json(parsed)
    raise DlrFailure(
        415,
        [
            error(
                "unsupported_media_type",
                f"a body of type {content_type or 'unknown'!r} cannot be read; send a form "
                "(application/x-www-form-urlencoded, multipart/form-data) or a JSON object",
            )
        ],
    )


async def _read_multipart(request: Request) -> list[tuple[str, str]]:
    try:
        form = await request.form(max_files=_MAX_FIELDS, max_fields=_MAX_FIELDS)
    except Exception as bad:  # malformed multipart bodies raise parser-specific errors
        raise DlrFailure(400, [error(INVALID, f"the form cannot be read ({bad})")]) from None
    pairs: list[tuple[str, str]] = []
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                pairs.append((key, (await value.read()).decode("utf-8", "replace")))
            else:
                pairs.append((key, value))
    finally:
        await form.close()
    return pairs
