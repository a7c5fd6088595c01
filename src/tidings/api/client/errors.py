"""Seed 004's error codes (Appendix 1) and how domain errors map onto them.

One table: a domain error's `reason` picks the code; the code picks the HTTP status.
"""

from __future__ import annotations

from tidings.errors import (
    AuthError,
    ClientBlocked,
    Conflict,
    InsufficientFunds,
    NotFound,
    PricingError,
    RateLimited,
    RoutingError,
    TidingsError,
)

# Appendix 1, as published (English wording ours).
DESCRIPTIONS: dict[int, str] = {
    0: "No errors",
    1: "Invalid key",
    2: "Not enough parameters",
    3: "User is blocked",
    4: "Function is not supported",
    5: "Unknown error",
    6: "Invalid tariff code",
    7: "Invalid parameters",
    8: "Not enough money",
    9: "Tariff is inactive",
    10: "Invalid send time",
    11: "Too many messages in processing",
    12: "Batch is too large",
    20: "SMS not found",
    21: "Incorrect msisdn",
    22: "Missing SMS reference",
    23: "SMS with this reference already exists",
    24: "Invalid request payload",
    25: "Invalid originator",
    26: "Empty or too long SMS text",
    27: "Invalid SMS reference",
    28: "Invalid SMS validity",
    29: "Invalid task id",
    30: "Task not found",
    31: "Phone is already in the batch",
    32: "Sender not allowed",
    # Ours, beside Appendix 1's (docs/optouts.md): the SMS and Viber codes of an opt-out.
    33: "Recipient has opted out",
    40: "Viber message not found",
    41: "Incorrect msisdn",
    43: "Viber message with this ID already exists",
    44: "Invalid request payload",
    45: "Sender is not registered",
    46: "Empty or too long Viber message text",
    47: "Invalid Viber message external ID",
    48: "Invalid Viber message validity",
    49: "Invalid Viber message options",
    51: "Phone is already in the batch",
    53: "Recipient has opted out",
    60: "HLR not found",
    61: "Incorrect msisdn",
    62: "Missing HLR reference",
    63: "HLR already exists",
    64: "Incorrect payload",
    65: "Invalid HLR reference",
    66: "Phone is already in the request",
    80: "Invalid message_id",
    81: "Invalid message_type",
    82: "Invalid source_type",
    83: "Invalid status",
    84: "Invalid country_name",
    85: "Invalid sl_clicks_comp",
    86: "Invalid time frame",
    90: "File not found",
    91: "File not ready",
    92: "Maximum count of exports reached",
    93: "File is empty",
}

# Appendix 1's general codes, the same for every product that sends or looks up numbers.
_GENERAL_CODES: dict[str, int] = {
    "missing": 2,
    "unsupported": 4,
    "bad_tariff": 6,
    "unknown_tariff": 6,
    "invalid": 7,
    "no_price": 7,
    "no_route": 7,
    "inactive_tariff": 9,
    "mixed_currency": 9,
    "batch_too_large": 12,
}

SMS_CODES: dict[str, int] = {
    **_GENERAL_CODES,
    "bad_send_time": 10,
    "message_not_found": 20,
    "bad_msisdn": 21,
    "missing_reference": 22,
    "duplicate_reference": 23,
    "bad_payload": 24,
    "empty_batch": 24,
    "bad_originator": 25,
    "bad_body": 26,
    "body_too_long": 26,
    "bad_reference": 27,
    "bad_validity": 28,
    "bad_task_id": 29,
    "task_not_found": 30,
    "duplicate_phone": 31,
    "opted_out": 33,
}

# HLR requests (docs/hlr.md): Appendix 1's 60-66, the general codes for the rest.
HLR_CODES: dict[str, int] = {
    **_GENERAL_CODES,
    "hlr_not_found": 60,
    "bad_msisdn": 61,
    "missing_reference": 62,
    "duplicate_reference": 63,
    "bad_payload": 64,
    "bad_reference": 65,
    "duplicate_phone": 66,
}

# Viber (seed 004, "Ошибки Viber"; docs/viber.md). 42 and 50 are not published; 53 is ours
# (an opt-out, as 33 for SMS: the Viber codes mirror the SMS ones 20 apart).
VIBER_CODES: dict[str, int] = {
    **_GENERAL_CODES,
    "bad_send_time": 10,
    "message_not_found": 40,
    "not_found": 40,
    "bad_msisdn": 41,
    "duplicate_reference": 43,
    "conflict": 43,
    "bad_payload": 44,
    "empty_batch": 44,
    "sender_not_registered": 45,
    "bad_text": 46,
    "bad_reference": 47,
    "bad_validity": 48,
    "bad_options": 49,
    "duplicate_phone": 51,
    "opted_out": 53,
}

# Statistics exports (docs/exports.md): the codes for their filters and files.
STAT_CODES: dict[str, int] = {
    "missing": 2,
    "unsupported": 4,
    "invalid": 7,
    "bad_payload": 7,
    "bad_format": 7,
    "export_failed": 5,
    "bad_message_id": 80,
    "bad_message_type": 81,
    "csv_needs_message_type": 81,
    "bad_source_type": 82,
    "bad_status": 83,
    "bad_country": 84,
    "bad_sl_clicks_comp": 85,
    "bad_time_frame": 86,
    "export_not_found": 90,
    "export_not_ready": 91,
    "export_limit": 92,
    "export_empty": 93,
}

# 91 is 409 (the export's state forbids it now; 425 Too Early is about TLS early data) and
# 93 is 404 (204 could not carry the error body).
_HTTP_STATUS: dict[int, int] = {
    1: 401,
    3: 403,
    4: 404,
    5: 500,
    8: 402,
    11: 429,  # the request rate limit (docs/api-hardening.md)
    20: 404,
    23: 409,
    30: 404,
    40: 404,
    43: 409,
    60: 404,
    63: 409,
    90: 404,
    91: 409,
    92: 409,
    93: 404,
}


def http_status(code: int) -> int:
    return _HTTP_STATUS.get(code, 400)


def code_for(error: TidingsError, codes: dict[str, int] = SMS_CODES) -> int:
    if isinstance(error, ClientBlocked):
        return 3
    if isinstance(error, AuthError):
        return 1
    if isinstance(error, InsufficientFunds):
        return 8
    if isinstance(error, RateLimited):
        return 11
    if error.reason in codes:
        return codes[error.reason]
    if isinstance(error, NotFound):
        return 20
    if isinstance(error, Conflict):
        return 23
    if isinstance(error, PricingError | RoutingError):
        return 7
    return 7
