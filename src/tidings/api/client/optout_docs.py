"""What the opt-out routes tell the OpenAPI document: bodies and answers as JSON schemas
(the handlers read and write JSON by hand)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tidings.api.openapi.routes import (
    DIGITS,
    FORM,
    JSON,
    MULTIPART,
    TEXT,
    TEXT_JSON,
    answer,
    json_object,
    request_body,
    seed_errors,
)

_NUMBER = {"type": ["string", "integer"]}
_BODY = {
    "anyOf": [
        json_object({"msisdn": _NUMBER}),
        json_object({"msisdns": {"type": "array", "items": _NUMBER, "minItems": 1}}),
    ]
}
_FORM = json_object({}, {"msisdn": TEXT, "msisdns": TEXT, "payload": TEXT})
_BODIES: dict[str, type[BaseModel] | dict[str, Any]] = {
    JSON: _BODY,
    TEXT_JSON: _BODY,
    FORM: _FORM,
    MULTIPART: _FORM,
}


def _changed(statuses: list[str]) -> dict[str, Any]:
    return json_object(
        {
            "error": {"const": "0"},
            "result": {
                "type": "array",
                "items": json_object({"msisdn": DIGITS, "status": {"enum": statuses}}),
            },
        }
    )


_ENTRY = json_object(
    {
        "msisdn": DIGITS,
        "source": {"enum": ["keyword", "api", "cli", "import"]},
        "created_at": TEXT,
    }
)

OPTOUT_LIST: dict[str, Any] = {
    "summary": "The numbers that opted out of this client's messages, in msisdn order",
    "openapi_extra": {
        "parameters": [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "Numbers per page, 1 to 10,000 (default 1,000); else error 7.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "Start after this msisdn: the `next` of the previous page.",
                "schema": {"type": "string"},
            },
        ]
    },
    "responses": {
        200: answer(
            "A page of the list; `next` is the `after` of the next page (null: the last).",
            json_object(
                {
                    "error": {"const": "0"},
                    "optouts": {"type": "array", "items": _ENTRY},
                    "next": {"anyOf": [DIGITS, {"type": "null"}]},
                }
            ),
        ),
        **seed_errors(400),
    },
}
OPTOUT_ONE: dict[str, Any] = {
    "summary": "Whether one number opted out of this client's messages",
    "responses": {
        200: answer(
            "The number, normalised, and whether it is on the list.",
            json_object(
                {"error": {"const": "0"}, "msisdn": DIGITS, "opted_out": {"type": "boolean"}},
                {"source": TEXT, "created_at": TEXT},
            ),
        ),
        **seed_errors(400),
    },
}
OPTOUT_ADD: dict[str, Any] = {
    "summary": "Put numbers on the opt-out list: nothing of this client goes to them",
    "openapi_extra": request_body(_BODIES),
    "responses": {
        200: answer("Each number: added, or already on the list.", _changed(["added", "listed"])),
        **seed_errors(400),
    },
}
OPTOUT_REMOVE: dict[str, Any] = {
    "summary": "Take numbers off the opt-out list",
    "openapi_extra": request_body(_BODIES),
    "responses": {
        200: answer(
            "Each number: removed, or not on the list.", _changed(["removed", "not_listed"])
        ),
        **seed_errors(400),
    },
}
OPTOUT_REMOVE_ONE: dict[str, Any] = {
    "summary": "Take one number off the opt-out list",
    "responses": {
        200: answer("Removed, or not on the list.", _changed(["removed", "not_listed"])),
        **seed_errors(400),
    },
}
