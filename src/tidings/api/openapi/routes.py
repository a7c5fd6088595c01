"""What each route says about itself: keyword arguments for its decorator (`summary`,
`responses`, `openapi_extra`), and the answers every operation of an API can give."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tidings.api.openapi.models import (
    DLR_QUERY_PARAMETERS,
    AdvancedReport,
    DlrData,
    DlrErrors,
    DlrForm,
    DlrJsonBody,
    DrError,
    ExportCreated,
    ExportDeleted,
    ExportJsonFile,
    ExportList,
    PriceTable,
    SeedError,
    SimpleReport,
    SmsBatchCreated,
    SmsCreated,
    SmsForm,
    SmsIndividual,
    SmsQuote,
    SmsStatus,
    SmsToPhone,
    SmsToPhones,
    StatFilter,
    StatForm,
    TaskStatus,
)

# --- Building blocks for the routes ---

JSON = "application/json"
TEXT_JSON = "text/json"
JSON_API = "application/vnd.api+json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def one_of(*models: type[BaseModel]) -> dict[str, Any]:
    return {"anyOf": [ref(model) for model in models]}


def _schema(model: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    return model if isinstance(model, dict) else ref(model)


def request_body(
    content: dict[str, type[BaseModel] | dict[str, Any]],
    *,
    required: bool = True,
    description: str | None = None,
    examples: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`openapi_extra` for a body read by hand: media type -> model (or JSON schema); the
    examples (name -> value) go with the first media type."""
    body: dict[str, Any] = {
        "required": required,
        "content": {media: {"schema": _schema(model)} for media, model in content.items()},
    }
    if examples:
        first = body["content"][next(iter(content))]
        first["examples"] = {name: {"value": value} for name, value in examples.items()}
    if description:
        body["description"] = description
    return {"requestBody": body}


# Schemas of answers written by hand (HLR, Viber), where no model describes them.
TEXT: dict[str, Any] = {"type": "string"}
DIGITS: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$"}
MONEY: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]+\.[0-9]+$"}


def json_object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON schema object: these properties required, those optional, others allowed."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


def answer(
    description: str,
    model: type[BaseModel] | dict[str, Any],
    *,
    media_type: str = JSON,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry of `responses=`."""
    entry: dict[str, Any] = {
        "description": description,
        "content": {media_type: {"schema": _schema(model)}},
    }
    if headers:
        entry["headers"] = headers
    return entry


_SEED_STATUS_TEXT = {
    400: "A field breaks a rule (codes 2, 6, 7, 9, 10, 12, 21, 22, 24–29, 31, 80–86), or the "
    "number opted out (33; Viber 53).",
    401: "Error 1: no API key, or not a key of an active client.",
    402: "Error 8: the balance does not cover the request.",
    403: "Error 3: the client is blocked.",
    404: "Error 4 (not supported), 20 (no such message), 30 (no such task), 90/93 (exports).",
    409: "Error 23 (reference already used), 91 (export not ready), 92 (too many exports).",
    413: "Error 12: the request body is larger than TIDINGS_MAX_REQUEST_BYTES.",
    429: "Error 11: the client's request rate limit is spent; retry after Retry-After seconds.",
    500: "Error 5: an unexpected fault; nothing was stored.",
}

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before the next request.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def seed_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Seed-004 error answers for these HTTP statuses (the codes they carry are in the text)."""
    return {status: answer(_SEED_STATUS_TEXT[status], SeedError) for status in statuses}


def seed_common() -> dict[int | str, dict[str, Any]]:
    common = seed_errors(401, 403, 413, 500)
    common[429] = answer(_SEED_STATUS_TEXT[429], SeedError, headers=RETRY_AFTER)
    return common


def dr_common() -> dict[int | str, dict[str, Any]]:
    return {
        401: answer(
            "`unauthorized`: no or wrong HTTP Basic credentials.",
            DrError,
            headers={"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
        ),
        403: answer(
            "`blocked`: the client is blocked; `forbidden`: the path names another client.",
            DrError,
        ),
        413: answer("`too_large`: the request body is too large.", DrError),
        429: answer(
            "`rate_limited`: the client's request rate limit is spent.",
            DrError,
            headers=RETRY_AFTER,
        ),
        500: answer("`internal`: an unexpected fault.", DrError),
    }


def dlr_common() -> dict[int | str, dict[str, Any]]:
    return {
        401: answer(
            "`authentication`: `_login`/`_password` missing, repeated differently, or wrong.",
            DlrErrors,
            media_type=JSON_API,
        ),
        413: answer("`payload_too_large`: the body is too large.", DlrErrors, media_type=JSON_API),
        429: answer(
            "`rate_limited`: the supplier's request rate limit is spent.",
            DlrErrors,
            media_type=JSON_API,
            headers=RETRY_AFTER,
        ),
        500: answer(
            "`internal`: nothing of the request was stored; retry it.",
            DlrErrors,
            media_type=JSON_API,
        ),
    }


# --- What each route says about itself (keyword arguments of its decorator) ---

_SMS_BODY = request_body(
    {
        JSON: one_of(SmsToPhone, SmsToPhones, SmsIndividual),
        TEXT_JSON: one_of(SmsToPhone, SmsToPhones, SmsIndividual),
        FORM: SmsForm,
        MULTIPART: SmsForm,
    },
    description="JSON (also `text/json`, or no content type), or a form whose `payload` "
    "field holds the JSON or whose fields are the request's fields.",
    examples={  # the seed's own examples (section "Отправка SMS")
        "phone": {
            "originator": "test",
            "body": "test sms",
            "validity": 72,
            "tariff": 9,
            "destination": "phone",
            "msisdn": "380972000000",
            "reference": "12erdgm9",
        },
        "phones": {
            "destination": "phones",
            "phones": [
                {"msisdn": "380972000001", "reference": "12erdgm9"},
                {"msisdn": "380972000002", "reference": "12erdgn0"},
            ],
            "originator": "test",
            "body": "test sms",
            "validity": 72,
            "tariff": 9,
        },
        "individual": {
            "validity": 72,
            "tariff": 9,
            "destination": "individual",
            "phones": [
                {
                    "originator": "test1",
                    "body": "test sms1",
                    "msisdn": "380972000001",
                    "reference": "12erdgm9",
                },
                {
                    "originator": "test2",
                    "body": "test sms2",
                    "msisdn": "380972000002",
                    "reference": "12erdgn0",
                },
            ],
        },
    },
)

SMS_CREATE: dict[str, Any] = {
    "summary": "Send SMS: one (`phone`), one text to many (`phones`), or one each (`individual`)",
    "openapi_extra": _SMS_BODY,
    "responses": {
        200: answer(
            "Accepted: one message, or a batch (a task) of them.",
            one_of(SmsCreated, SmsBatchCreated),
        ),
        **seed_errors(400, 402, 404, 409),
    },
}
SMS_PRICE: dict[str, Any] = {
    "summary": "The price of sending these SMS (nothing is sent or charged)",
    "openapi_extra": _SMS_BODY,
    "responses": {200: answer("The total price.", SmsQuote), **seed_errors(400, 404, 409)},
}
# GET on a create or price endpoint, of any product.
USE_PUT_OR_POST: dict[str, Any] = {
    "summary": "Not supported: use PUT or POST (error 4)",
    "status_code": 404,  # what FastAPI documents as the answer; it never answers 200
    "responses": {404: answer("Error 4: use PUT or POST.", SeedError)},
}
SMS_PRICES: dict[str, Any] = {
    "summary": "The SMS price table of a tariff (0 to 9; 0 without one)",
    "responses": {200: answer("The prices.", PriceTable), **seed_errors(400)},
}
SMS_BY_REFERENCE: dict[str, Any] = {
    "summary": "A message's status by the client's reference",
    "responses": {200: answer("The message.", SmsStatus), **seed_errors(404)},
}
SMS_TASK: dict[str, Any] = {
    "summary": "A batch's (task's) counters",
    "responses": {200: answer("The task.", TaskStatus), **seed_errors(400, 404)},
}
SMS_BY_ID: dict[str, Any] = {
    "summary": "A message's status by its id",
    "responses": {200: answer("The message.", SmsStatus), **seed_errors(404)},
}
SMS_SHORT_FORM: dict[str, Any] = {
    "summary": "A message by id, else by reference; else a task by id",
    "responses": {
        200: answer("The message, or the task.", one_of(SmsStatus, TaskStatus)),
        **seed_errors(404),
    },
}

STAT_CREATE: dict[str, Any] = {
    "summary": "Ask for a statistics export (built in the background)",
    "openapi_extra": request_body(
        {JSON: StatFilter, TEXT_JSON: StatFilter, FORM: StatForm, MULTIPART: StatForm}
    ),
    "responses": {
        200: answer("The export's key.", ExportCreated),
        **seed_errors(400, 404, 409),
    },
}
STAT_FILE: dict[str, Any] = {
    "summary": "An export's file in json, xml or csv",
    "responses": {
        200: {
            "description": "The file.",
            "content": {
                JSON: {"schema": ref(ExportJsonFile)},
                "application/xml": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **seed_errors(400, 404),
        409: answer(
            _SEED_STATUS_TEXT[409],
            SeedError,
            headers={"Retry-After": {"required": False, "schema": {"type": "integer"}}},
        ),
    },
}
STAT_LIST: dict[str, Any] = {
    "summary": "The client's exports",
    "responses": {200: answer("The exports.", ExportList)},
}
STAT_DELETE: dict[str, Any] = {
    "summary": "Delete an export and its files",
    "responses": {200: answer("Deleted.", ExportDeleted), **seed_errors(404)},
}

_DR_ERRORS: dict[int | str, dict[str, Any]] = {
    400: answer("`invalid`: the request cannot be answered.", DrError),
    404: answer("`not_found`: no such message of this client.", DrError),
}
DR_SIMPLE: dict[str, Any] = {
    "summary": "A message's simple delivery report",
    "responses": {200: answer("The report.", SimpleReport), **_DR_ERRORS},
}
DR_ADVANCED: dict[str, Any] = {
    "summary": "A message's advanced delivery report (per channel)",
    "responses": {200: answer("The report.", AdvancedReport), **_DR_ERRORS},
}

_DLR_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: answer("Every receipt stored, in order.", DlrData, media_type=JSON_API),
    400: answer(
        "`missing_argument` / `invalid_argument`: one error per bad argument; nothing stored.",
        DlrErrors,
        media_type=JSON_API,
    ),
    415: answer(
        "`unsupported_media_type`: a body that is neither a form nor JSON.",
        DlrErrors,
        media_type=JSON_API,
    ),
}
DLR_GET: dict[str, Any] = {
    "summary": "Report delivery of messages (arguments in the query string)",
    "responses": _DLR_ANSWERS,
    "openapi_extra": {"parameters": DLR_QUERY_PARAMETERS},
}
DLR_POST: dict[str, Any] = {
    "summary": "Report delivery of messages (arguments in the query string and/or the body)",
    "responses": _DLR_ANSWERS,
    "openapi_extra": {
        "parameters": DLR_QUERY_PARAMETERS,
        **request_body(
            {FORM: DlrForm, MULTIPART: DlrForm, JSON: DlrJsonBody, JSON_API: DlrJsonBody},
            required=False,
            description="Arguments may also come in the body (after the query string's).",
        ),
    },
}
