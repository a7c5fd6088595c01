from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tidings import __version__
from tidings.api.state import app_state
from tidings.db.outage import RETRY_AFTER_SECONDS

router = APIRouter(include_in_schema=False)


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 once the API and (in embedded mode) the workers run and the database answers."""
    state = app_state(request)
    if not state.ready:
        return JSONResponse({"status": "starting", "version": __version__}, status_code=503)
    try:
        async with state.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as error:  # the database is what "unhealthy" means here
        # Not ready while the database is away; the next probe after it is back says ok
        # (the pool pings a connection idle for a while on checkout, db/engine.py).
        return JSONResponse(
            {
                "status": "database unavailable",
                "version": __version__,
                "detail": str(error).splitlines()[0][:200] if str(error) else type(error).__name__,
            },
            503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    lanes = sorted(lane.name for lane in state.worker.lanes.values()) if state.worker else None
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "workers": state.worker is not None,
            "suppliers": lanes,
        }
    )
