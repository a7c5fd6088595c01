"""What the HLR routes tell the OpenAPI document (`tidings.api.openapi`): their bodies and
answers, written as JSON schemas here because the handlers read and write JSON by hand."""

from __future__ import annotations

from typing import Any

from tidings.api.openapi.models import PriceTable
from tidings.api.openapi.routes import (
    DIGITS,
    FORM,
    JSON,
    MONEY,
    MULTIPART,
    TEXT,
    TEXT_JSON,
    answer,
    json_object,
    request_body,
    seed_errors,
)
from tidings.connectors.hlr.base import STATUSES

_ITEM = json_object(
    {"msisdn": {"type": ["string", "integer"]}, "reference": {"type": ["string", "integer"]}},
    {
        "tariff": {"type": ["integer", "string"]},
        "callback_url": TEXT,
    },
)
_FORM = json_object(
    {},
    {
        "msisdn": TEXT,
        "reference": TEXT,
        "tariff": TEXT,
        "callback_url": TEXT,
        "payload": {"type": "string", "description": "bulk: a JSON array of lookups"},
    },
)
_JSON_BODY = {"anyOf": [_ITEM, {"type": "array", "items": _ITEM, "minItems": 1}]}

CREATED = json_object({"error": {"const": "0"}, "id": DIGITS, "price": MONEY, "currency": TEXT})
BULK_CREATED = json_object(
    {
        "result": {
            "type": "array",
            "items": json_object(
                {"reference": TEXT, "id": DIGITS, "error": {"enum": ["0", "63"]}},
                {"price": MONEY, "currency": TEXT, "errorDescription": TEXT},
            ),
        },
        "error": {"const": "0"},
        "totalprice": MONEY,
        "currency": TEXT,
    }
)
RESULT = json_object(
    {
        "id": DIGITS,
        "reference": TEXT,
        "msisdn": DIGITS,
        "network": {"type": "string", "description": 'MCCMNC, or "unknown"'},
        "status": {"enum": list(STATUSES)},
        "details": json_object(
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
HLR_PRICES: dict[str, Any] = {
    "summary": "The HLR price table of a tariff (0 to 9; 9 without one)",
    "responses": {200: answer("The prices.", PriceTable), **seed_errors(400)},
}
HLR_RESULT: dict[str, Any] = {
    "summary": "An HLR lookup's result",
    "responses": {200: answer("The lookup.", RESULT), **seed_errors(404)},
}
