"""Seed 004's statistics exports ("Детальная статистика сообщений"): create, fetch, list, delete.

    POST   /rest/stat/create                              {"error": 0, "key": "…"}
    GET    /rest/stat/file/id/{key}/format/{json|xml|csv} the file, streamed
    GET    /rest/stat/list                                {"error": 0, "files": […]}
    DELETE /rest/message/list/{key}                       {"error": 0}

Errors are seed 004's `{"error": "N", "errorDescription": …}` with codes 80-93 (docs/exports.md).
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from tidings.api.client.common import read_then_authenticate
from tidings.api.client.errors import STAT_CODES
from tidings.api.client.render import format_time
from tidings.api.client.wire import ClientApiRoute, json_response
from tidings.api.openapi import routes as doc
from tidings.api.state import AppState, app_state
from tidings.db.engine import transaction
from tidings.errors import InvalidRequest, NotFound, TidingsError
from tidings.exports.filters import ExportFilter, parse_callback, parse_filter
from tidings.exports.formats import ALL_FORMATS, MEDIA_TYPES, formats_for, writer_for
from tidings.exports.rows import ExportRow, format_price
from tidings.exports.service import (
    check_downloadable,
    create_export,
    delete_export,
    find_export,
    list_exports,
    message_type_of,
    public_state,
)
from tidings.exports.storage import ExportStorage

log = logging.getLogger("tidings.api.client")

RETRY_AFTER_SECONDS = 5


@dataclass(slots=True)
class StatContext:
    """What the export endpoints need beyond AppState: the files, and a nudge for a worker
    in this process (so a new export starts at once rather than at its next poll)."""

    storage: ExportStorage
    wake: Callable[[], None] = field(default=lambda: None)


def stat_context(request: Request) -> StatContext:
    context: StatContext = request.app.state.exports
    return context


class StatApiRoute(ClientApiRoute):
    """Seed 004's error shape, with the statistics codes (80-93)."""

    codes = STAT_CODES

    def error_answer(self, code: int, error: TidingsError) -> Response:
        response = super().error_answer(code, error)
        if code == 91:  # the export is not ready yet: say when to ask again
            response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
        return response


def _stat_parser(state: AppState) -> Callable[[Any], tuple[ExportFilter, str | None]]:
    return lambda payload: (parse_filter(payload, state.countries), parse_callback(payload))


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, route_class=StatApiRoute, tags=["Statistics (seed 004)"])

    @router.post("/stat/create", **doc.STAT_CREATE)
    async def create(request: Request) -> Response:
        state = app_state(request)
        caller, (spec, callback_url) = await read_then_authenticate(request, _stat_parser(state))
        if caller.is_test:
            return json_response({"error": 0, "key": secrets.token_hex(16)})
        async with transaction(state.sessions) as session:
            key = await create_export(session, state.clock, caller.client_id, spec, callback_url)
        stat_context(request).wake()
        return json_response({"error": 0, "key": key})

    @router.get("/stat/file/id/{key}/format/{fmt}", **doc.STAT_FILE)
    async def file(request: Request, key: str, fmt: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        fmt = fmt.lower()
        if caller.is_test:
            return _fake_file(key, fmt, state.clock.now())
        async with state.sessions() as session:
            export = await find_export(session, state.clock, caller.client_id, key)
        check_downloadable(export, fmt)
        stored = await stat_context(request).storage.open(export.key, fmt)
        if stored is None:
            log.warning("export %s is ready but its %s file is missing", export.key, fmt)
            raise NotFound(f"the {fmt} file of export {key} is missing", reason="export_not_found")
        return StreamingResponse(
            stored.chunks(),
            media_type=MEDIA_TYPES[fmt],
            headers={
                "content-length": str(stored.size),
                "content-disposition": f'attachment; filename="stat-{export.key}.{fmt}"',
            },
        )

    @router.get("/stat/list", **doc.STAT_LIST)
    async def listing(request: Request) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response({"error": 0, "files": []})
        async with state.sessions() as session:
            exports = await list_exports(session, state.clock, caller.client_id)
        files = []
        for export in exports:
            sizes = export.sizes or {}
            files.append(
                {
                    "key": export.key,
                    "state": public_state(export),
                    "created": format_time(export.created_at),
                    "expires": format_time(export.expires_at),
                    "message_type": message_type_of(export),
                    "formats": list(formats_for(message_type_of(export))),
                    "rows": export.row_count,
                    "size": sum(sizes.values()) if sizes else None,
                    "sizes": sizes or None,
                }
            )
        return json_response({"error": 0, "files": files})

    @router.delete("/message/list/{key}", **doc.STAT_DELETE)
    async def remove(request: Request, key: str) -> Response:
        state = app_state(request)
        caller = await state.callers.authenticate(request.headers.get("x-api-key"))
        if caller.is_test:
            return json_response({"error": 0})
        async with transaction(state.sessions) as session:
            await delete_export(session, state.clock, caller.client_id, key)
        await stat_context(request).storage.delete(key)
        return json_response({"error": 0})

    return router


# --- Test keys: made-up rows in the asked format, as the seed says ----------------------------

_FAKE_STATUSES = ("Delivered", "Delivered", "Delivered", "Sent", "Undelivered", "Expired")


def _fake_rows(key: str, now: datetime) -> list[ExportRow]:
    rng = random.Random(key)
    rows = []
    for index in range(3):
        time_in = now - timedelta(seconds=rng.randrange(60, 86_400))
        status = rng.choice(_FAKE_STATUSES)
        rows.append(
            {
                "message_ID": rng.randrange(10**7, 10**8),
                "message_type": "sms",
                "direction": "outbound",
                "msisdn": 380_972_000_000 + rng.randrange(10**6),
                "Country_name": "Ukraine",
                "brand_name": "Kyivstar",
                "mcc": "255",
                "mnc": "",
                "originator": "test",
                "price": format_price(20_000, "EUR"),
                "Incoming date": format_time(time_in),
                "Sending date": format_time(time_in + timedelta(seconds=1)),
                "DLR Date": None
                if status == "Sent"
                else format_time(time_in + timedelta(seconds=rng.randrange(2, 60))),
                "Status": status,
                "body": f"test sms {index + 1}",
            }
        )
    return rows


def _fake_file(key: str, fmt: str, now: datetime) -> Response:
    if fmt not in ALL_FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(ALL_FORMATS)}", reason="bad_format")
    writer = writer_for(fmt, "sms")
    content = writer.begin() + writer.rows(_fake_rows(key, now)) + writer.end()
    return Response(content, media_type=MEDIA_TYPES[fmt])
