"""What the HLR routes tell the OpenAPI document (`tidings.api.openapi`): their bodies and
answers, written as JSON schemas here because the handlers read and write JSON by hand."""

from __future__ import annotations

from typing import Any

from tidings.api.openapi.models import PriceTable, SeedError
from tidings.api.openapi.routes import (
    FORM,
    JSON,
    MULTIPART,
    TEXT_JSON,
    answer,
    request_body,
    seed_errors,
)
from tidings.connectors.hlr.base import STATUSES

_TEXT: dict[str, Any] = {"type": "string"}
_DIGITS: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$"}
_MONEY: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]+\.[0-9]+$"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


_ITEM = _object(
    {"msisdn": {"type": ["string", "integer"]}, "reference": {"type": ["string", "integer"]}},
    {
        "tariff": {"type": ["integer", "string"]},
        "callback_url": _TEXT,
    },
)
_FORM = _object(
    {},
    {
        "msisdn": _TEXT,
        "reference": _TEXT,
        "tariff": _TEXT,
        "callback_url": _TEXT,
        "payload": {"type": "string", "description": "bulk: a JSON array of lookups"},
    },
)
_JSON_BODY = {"anyOf": [_ITEM, {"type": "array", "items": _ITEM, "minItems": 1}]}

CREATED = _object({"error": {"const": "0"}, "id": _DIGITS, "price": _MONEY, "currency": _TEXT})
BULK_CREATED = _object(
    {
        "result": {
            "type": "array",
            "items": _object(
                {"reference": _TEXT, "id": _DIGITS, "error": {"enum": ["0", "63"]}},
                {"price": _MONEY, "currency": _TEXT, "errorDescription": _TEXT},
            ),
        },
        "error": {"const": "0"},
        "totalprice": _MONEY,
        "currency": _TEXT,
    }
)
RESULT = _object(
    {
        "id": _DIGITS,
        "reference": _TEXT,
        "msisdn": _DIGITS,
        "network": {"type": "string", "description": 'MCCMNC, or "unknown"'},
        "status": {"enum": list(STATUSES)},
        "details": _object(
            {"ported": {"enum": ["0", "1"]}, "roaming": {"enum": ["0", "1"]}},
        ),
        "createdDatetime": {"type": "string", "format": "date-time"},
        "statusDatetime": {"type": "string", "format": "date-time"},
    }
)

HLR_CREATE: dict[str, Any] = {
    "summary": "HLR lookups: one (form fields) or many (`payload`, a JSON array)",
    "openapi_extra": request_body(
        {JSON: _JSON_BODY, TEXT_JSON: _JSON_BODY, FORM: _FORM, MULTIPART: _FORM},
        description="multipart/form-data as the seed insists; a url-encoded form or JSON "
        "works the same.",
    ),
    "responses": {
        200: answer(
            "Accepted: one lookup, or each of many (error 63 for a reference used before).",
            {"anyOf": [CREATED, BULK_CREATED]},
        ),
        **seed_errors(400, 402, 404, 409),
    },
}
HLR_BY_GET: dict[str, Any] = {
    "summary": "Not supported: use PUT or POST (error 4)",
    "status_code": 404,
    "responses": {404: answer("Error 4: use PUT or POST.", SeedError)},
}
HLR_PRICES: dict[str, Any] = {
    "summary": "The HLR price table of a tariff (0 to 9; 9 without one)",
    "responses": {200: answer("The prices.", PriceTable), **seed_errors(400)},
}
HLR_RESULT: dict[str, Any] = {
    "summary": "An HLR lookup's result",
    "responses": {200: answer("The lookup.", RESULT), **seed_errors(404)},
}
