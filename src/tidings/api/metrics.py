"""`GET /metrics`: this process's Prometheus metrics (docs/operations.md lists them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tidings.api.state import app_state
from tidings.observability.exposition import scrape
from tidings.observability.metrics import CONTENT_TYPE

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    state = app_state(request)
    if state.metrics is None:  # TIDINGS_METRICS=0
        return Response("metrics are off (TIDINGS_METRICS=0)\n", 404, media_type="text/plain")
    if state.metrics_group is not None:  # every process of `tidings serve --processes N`
        return Response(await state.metrics_group.scrape(), media_type=CONTENT_TYPE)
    return Response(await scrape(state.metrics), media_type=CONTENT_TYPE)
