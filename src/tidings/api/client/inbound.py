"""`GET /rest/sms/inbound`: a client's inbound messages, oldest first, cursor-paged.

    ?since=CURSOR   the `next` of the previous page (an inbound message id; 0 or absent:
                    from the first), or a time (`2026-12-04 10:00:00`, ISO 8601 too):
                    messages received from then on
    ?limit=N        1 to 1000 (default 100)

The answer is seed 004's style: `{"error": "0", "inbound": [...], "next": "…", "more": …}`;
`next` is the cursor to ask with next time (the last id, or the one asked with when the
page is empty), `more` whether a full page came back. Errors are seed 004's codes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from tidings.api.client.wire import json_response
from tidings.api.openapi.routes import seed_errors
from tidings.api.state import app_state
from tidings.db.ids import MAX_ROW_ID, parse_id
from tidings.errors import InvalidRequest
from tidings.inbound.repository import InboundRepository
from tidings.inbound.service import inbound_body

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

SMS_INBOUND: dict[str, Any] = {
    "summary": "Inbound messages (MO) to the client's numbers, oldest first, cursor-paged",
    "responses": {
        200: {
            "description": "A page of inbound messages (docs/inbound.md has the fields).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["error", "inbound", "next", "more"],
                        "properties": {
                            "error": {"type": "string"},
                            "inbound": {"type": "array", "items": {"type": "object"}},
                            "next": {"type": "string"},
                            "more": {"type": "boolean"},
                        },
                    }
                }
            },
        },
        **seed_errors(400),
    },
}


def parse_since(value: str | None) -> tuple[int, datetime | None]:
    """(id cursor, time) of `since`; raises InvalidRequest (code 7)."""
    if value is None or value == "":
        return 0, None
    if value.isascii() and value.isdigit():
        if parse_id(value, MAX_ROW_ID) is None:  # inbound ids are 32-bit
            raise InvalidRequest(f"since {value!r} is out of range", reason="invalid")
        return int(value), None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return 0, moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time; a time past year 9999 in UTC
        raise InvalidRequest(
            f"since {value!r} is neither a cursor nor a time", reason="invalid", field="since"
        ) from None


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    digits = value.isascii() and value.isdigit() and len(value) <= 6
    if not digits or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit must be a number from 1 to {MAX_LIMIT}", reason="invalid", field="limit"
        )
    return int(value)


def add_inbound_routes(router: APIRouter) -> None:
    """Before `/sms/{message_id}`, which would take the path otherwise."""

    @router.get("/sms/inbound", **SMS_INBOUND)
    async def sms_inbound(request: Request) -> Response:
        state = app_state(request)
        params = request.query_params
        async with state.sessions() as session:
            caller = await state.callers.authenticate(request.headers.get("x-api-key"))
            after_id, since = parse_since(params.get("since"))
            limit = parse_limit(params.get("limit"))
            if caller.is_test:  # a test key has no numbers
                return json_response(
                    {"error": "0", "inbound": [], "next": str(after_id), "more": False}
                )
            page = await InboundRepository(session).page(caller.client_id, after_id, since, limit)
        return json_response(
            {
                "error": "0",
                "inbound": [inbound_body(m) for m in page],
                "next": str(page[-1].id if page else after_id),
                "more": len(page) == limit,
            }
        )
