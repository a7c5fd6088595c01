"""Anything else under the client API's paths: error 4, in the API's own shape."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tidings.api.client.wire import error_response

router = APIRouter(include_in_schema=False)

_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


@router.api_route("/rest/{path:path}", methods=_METHODS)
async def unsupported_rest(path: str) -> Response:
    return error_response(4, f"/rest/{path}")


@router.api_route("/sms/{path:path}", methods=_METHODS)
async def unsupported_sms(path: str) -> Response:
    return error_response(4, f"/sms/{path}")
