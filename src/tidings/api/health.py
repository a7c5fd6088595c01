from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tidings.api.state import app_state

router = APIRouter(include_in_schema=False)


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 once the API and (in embedded mode) the workers run and the database answers."""
    state = app_state(request)
    if not state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        async with state.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as error:  # the database is what "unhealthy" means here
        return JSONResponse({"status": "database unavailable", "detail": str(error)[:200]}, 503)
    lanes = sorted(lane.name for lane in state.worker.lanes.values()) if state.worker else None
    return JSONResponse({"status": "ok", "workers": state.worker is not None, "suppliers": lanes})
