"""What the Viber routes tell the OpenAPI document (`tidings.api.openapi`): their bodies and
answers, written as JSON schemas here because the handlers read and write JSON by hand."""

from __future__ import annotations

from typing import Any

from tidings.api.client.statuses import SEED_004_STATUS
from tidings.api.openapi.models import PriceTable, SmsQuote
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

_NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_WHOLE: dict[str, Any] = {"type": ["integer", "string"]}


_RECIPIENT = json_object(
    {},
    {
        "msisdn": {"type": ["string", "integer"]},
        "phone": {"type": ["string", "integer"], "description": "read where msisdn is missing"},
        "external_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
    },
)
_OPTIONS = json_object(
    {},
    {
        "viber": json_object({}, {"img": TEXT, "caption": TEXT, "action": TEXT}),
        "sms": json_object(
            {"text": TEXT},
            {"originator": TEXT, "validity": {**_WHOLE, "description": "seconds"}},
        ),
    },
)
_MESSAGE = json_object(
    {"to": {"type": "array", "items": _RECIPIENT, "minItems": 1}, "text": TEXT},
    {
        "callback_url": TEXT,
        "alpha_name": {"type": "string", "description": "a sender registered for the client"},
        "is_promotional": {"type": "boolean"},
        "options": _OPTIONS,
        "scheduledDatetime": {"type": "string", "description": "ISO 8601"},
    },
)
_BODY = json_object(
    {"messages": {"type": "array", "items": _MESSAGE, "minItems": 1}},
    {
        "tariff": {**_WHOLE, "description": "0 to 9; the client's own tariff when absent"},
        "validity": {**_WHOLE, "description": "the Viber TTL in seconds, 15 to 86400"},
    },
)
_FORM = json_object({}, {"payload": {"type": "string", "description": "the request as JSON text"}})

_EXAMPLES: dict[str, Any] = {
    # The seed's own example ("Отправка Viber-сообщения"), with a date in place of its
    # placeholder "ISO 8601 date".
    "seed": {
        "tariff": 9,
        "validity": 24,
        "messages": [
            {
                "to": [
                    {"msisdn": "380972920283", "external_id": "example_12"},
                    {"msisdn": "380972920282", "external_id": "example_13"},
                ],
                "text": "My Viber messages is shinier than your SMS messages",
                "callback_url": "https://my-cool-webpage.com/viber-dlr",
                "alpha_name": "My Company",
                "is_promotional": False,
                "options": {
                    "viber": {
                        "img": "http://my-cool-webpage.com/logo.png",
                        "caption": "Join us!",
                        "action": "http://my-cool-webpage.com",
                    }
                },
                "scheduledDatetime": "2026-12-01T10:00:00+02:00",
            }
        ],
    },
    # docs/viber.md: with the SMS alternative (Tidings' own `options.sms`).
    "with_sms_alternative": {
        "tariff": 0,
        "validity": 3600,
        "messages": [
            {
                "to": [{"msisdn": "380972920283", "external_id": "example_12"}],
                "text": "My Viber messages is shinier than your SMS messages",
                "alpha_name": "My Company",
                "options": {
                    "sms": {
                        "text": "Join us: my-cool-webpage.com",
                        "originator": "MyCompany",
                        "validity": 300,
                    }
                },
            }
        ],
    },
}

_REQUEST = request_body(
    {JSON: _BODY, TEXT_JSON: _BODY, FORM: _FORM, MULTIPART: _FORM},
    description="JSON (also `text/json`, or no content type), or a form whose `payload` "
    "field holds the JSON.",
    examples=_EXAMPLES,
)

CREATED: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1,
    "items": json_object(
        {
            "error": {"const": "0"},
            "messages": {
                "type": "array",
                "items": {
                    "anyOf": [
                        json_object(
                            {"id": DIGITS, "price": MONEY, "currency": TEXT},
                            {"reference": TEXT},
                        ),
                        # A recipient refused on its own: 53, it opted out (docs/optouts.md).
                        json_object(
                            {"msisdn": DIGITS, "error": {"const": "53"}, "errorDescription": TEXT},
                            {"reference": TEXT},
                        ),
                    ]
                },
            },
            "total_price": MONEY,
            "currency": TEXT,
        }
    ),
}
_STATUS_FIELDS: dict[str, Any] = {
    "id": DIGITS,
    "msisdn": TEXT,
    "reference": _NULLABLE_TEXT,
    "time_in": _NULLABLE_TEXT,
    "time_sent": _NULLABLE_TEXT,
    "time_dr": _NULLABLE_TEXT,
    "status": {"enum": sorted(set(SEED_004_STATUS.values()))},
    "price": MONEY,
    "currency": TEXT,
}
STATUS = json_object(
    {"error": {"const": "0"}, **_STATUS_FIELDS},
    {
        "message_type": {"const": "viber"},
        "alternativeSMS": json_object(
            _STATUS_FIELDS, {"originator": _NULLABLE_TEXT, "message_type": TEXT}
        ),
    },
)

VIBER_CREATE: dict[str, Any] = {
    "summary": "Send Viber messages, each to one or more recipients",
    "openapi_extra": _REQUEST,
    "responses": {
        200: answer("Accepted: one message per recipient.", CREATED),
        **seed_errors(400, 402, 404, 409),
    },
}
VIBER_PRICE: dict[str, Any] = {
    "summary": "The price of sending these Viber messages (nothing is sent or charged)",
    "openapi_extra": _REQUEST,
    "responses": {200: answer("The total price.", SmsQuote), **seed_errors(400, 402, 404, 409)},
}
VIBER_PRICES: dict[str, Any] = {
    "summary": "The Viber price table of a tariff (0 to 9; 0 without one)",
    "responses": {200: answer("The prices.", PriceTable), **seed_errors(400)},
}
VIBER_STATUS: dict[str, Any] = {
    "summary": "A Viber message's status, with its SMS alternative once that was sent",
    "responses": {200: answer("The message.", STATUS), **seed_errors(404)},
}
