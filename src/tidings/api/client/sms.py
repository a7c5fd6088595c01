"""Seed 004's SMS endpoints: create, price, status by id / reference / task, price tables."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response

from tidings.accounts.service import Caller
from tidings.api.client.common import (
    add_price_tables,
    fake_status,
    quote_response,
    read_then_authenticate,
)
from tidings.api.client.inbound import add_inbound_routes
from tidings.api.client.parsing import REFERENCE, parse_sms_request
from tidings.api.client.render import batch_result, status_body, task_body
from tidings.api.client.wire import ClientApiRoute, json_response
from tidings.api.openapi import routes as doc
from tidings.api.state import AppState, app_state
from tidings.billing.service import format_money
from tidings.db.ids import parse_id
from tidings.db.replica import read_with_fallback
from tidings.errors import InvalidRequest, NotFound
from tidings.inbound.replies import pin_suppliers, resolve_replies
from tidings.messages.acceptance import (
    SmsRequest,
    fake_acceptance,
    prepare_sms,
    quote_sms,
)
from tidings.messages.queries import get_message, get_message_by_reference, get_task_summary


def _sms_parser(state: AppState) -> Callable[[Any], SmsRequest]:
    return lambda payload: parse_sms_request(payload, state.clock.now())


async def _replies(
    state: AppState, caller: Caller, parsed: SmsRequest
) -> tuple[SmsRequest, dict[int, int]]:
    """Fill in the replies' addresses (`reply_to`), and which supplier each goes through."""
    if all(item.reply_to is None for item in parsed.items):
        return parsed, {}
    async with state.sessions() as session:
        return await resolve_replies(session, caller.client_id, parsed)


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, route_class=ClientApiRoute, tags=["SMS (seed 004)"])

    @router.put("/sms/create", **doc.SMS_CREATE)
    @router.post("/sms/create", **doc.SMS_CREATE)
    async def create_sms(request: Request) -> Response:
        state = app_state(request)
        caller, parsed = await read_then_authenticate(request, _sms_parser(state))
        parsed, pins = await _replies(state, caller, parsed)
        prepared = pin_suppliers(
            prepare_sms(await state.catalog.get(), caller, parsed, state.limits), pins
        )
        if caller.is_test:
            accepted = fake_acceptance(prepared)
        else:
            accepted = await state.accepts.submit(prepared)
        if not parsed.is_batch:
            item = accepted.items[0]
            return json_response(
                {
                    "error": "0",
                    "id": str(item.id),
                    "reference": item.reference,
                    "price": format_money(item.price),
                    "currency": item.currency,
                }
            )
        return json_response(
            {
                "result": batch_result(accepted),
                "error": "0",
                "totalprice": format_money(accepted.total_price),
                "currency": accepted.currency,
                "task_id": str(accepted.task_id),
            }
        )

    @router.put("/sms/price", **doc.SMS_PRICE)
    @router.post("/sms/price", **doc.SMS_PRICE)
    async def price_sms(request: Request) -> Response:
        state = app_state(request)
        caller, parsed = await read_then_authenticate(request, _sms_parser(state))
        parsed, _ = await _replies(state, caller, parsed)
        return quote_response(quote_sms(await state.catalog.get(), caller, parsed, state.limits))

    add_price_tables(router, "sms", 0, doc.SMS_PRICES)

    @router.get("/sms/create", **doc.USE_PUT_OR_POST)
    @router.get("/sms/price", **doc.USE_PUT_OR_POST)
    async def create_by_get(request: Request) -> Response:
        raise InvalidRequest("use PUT or POST", reason="unsupported")

    @router.get("/sms/reference/{reference:path}", **doc.SMS_BY_REFERENCE)
    async def sms_by_reference(request: Request, reference: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response(_fake_status(state.clock.now(), reference=reference))
        if not REFERENCE.fullmatch(reference):  # no such reference can have been stored
            raise NotFound(f"no message with reference {reference!r}", reason="message_not_found")
        message = await read_with_fallback(
            state.reads,
            state.sessions,
            lambda session: get_message_by_reference(session, caller.client_id, reference),
        )
        return json_response(status_body(message))

    @router.get("/sms/task/{task_id}", **doc.SMS_TASK)
    async def sms_task(request: Request, task_id: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if not (task_id.isascii() and task_id.isdigit()):
            raise InvalidRequest(f"task id {task_id!r} is not a number", reason="bad_task_id")
        number = parse_id(task_id)
        if number is None:
            raise NotFound(f"no task {task_id}", reason="task_not_found")
        if caller.is_test:
            return json_response(_fake_task(number))
        summary = await read_with_fallback(
            state.reads,
            state.sessions,
            lambda session: get_task_summary(session, caller.client_id, number),
        )
        return json_response(task_body(summary))

    add_inbound_routes(router)

    @router.get("/sms/{message_id}", **(doc.SMS_BY_ID if prefix else doc.SMS_SHORT_FORM))
    async def sms_by_id(request: Request, message_id: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response(_fake_status(state.clock.now(), message_id=message_id))
        if prefix == "":
            body = await read_with_fallback(
                state.reads,
                state.sessions,
                lambda session: _short_form(session, caller, message_id),
            )
            return json_response(body)
        number = parse_id(message_id)
        if number is None:
            raise NotFound(f"no message {message_id!r}", reason="message_not_found")
        message = await read_with_fallback(
            state.reads,
            state.sessions,
            lambda session: get_message(session, caller.client_id, number),
        )
        return json_response(status_body(message))

    return router


async def _short_form(session: Any, caller: Caller, key: str) -> dict[str, Any]:
    """`GET /sms/{id|reference|task_id}`: a message id first, then a reference, then a task."""
    number = parse_id(key)
    if number is not None:
        with contextlib.suppress(NotFound):
            return status_body(await get_message(session, caller.client_id, number))
    if REFERENCE.fullmatch(key):
        with contextlib.suppress(NotFound):
            return status_body(await get_message_by_reference(session, caller.client_id, key))
    if number is not None:
        with contextlib.suppress(NotFound):
            return task_body(await get_task_summary(session, caller.client_id, number))
    raise NotFound(f"no message, reference or task {key!r}", reason="message_not_found")


_FAKE_STATUSES = ("delivered", "delivered", "delivered", "sent", "undelivered", "expired")


def _fake_status(
    now: datetime, *, message_id: str | None = None, reference: str | None = None
) -> dict[str, Any]:
    return fake_status(now, _FAKE_STATUSES, "0.02", message_id=message_id, reference=reference)


def _fake_task(task_id: int) -> dict[str, Any]:
    rng = random.Random(task_id)
    total = rng.randrange(2, 50)
    delivered = rng.randrange(0, total + 1)
    undeliverable = total - delivered
    return {
        "error": "0",
        "task_id": str(task_id),
        "originator": "test",
        "body": "test sms",
        "validity": 72,
        "total": str(total),
        "sent": str(total),
        "delivered": str(delivered),
        "expired": "0",
        "undeliverable": str(undeliverable),
        "unknown": "0",
        "totalprice": format_money(total * Decimal("0.02")),
        "currency": "EUR",
    }
