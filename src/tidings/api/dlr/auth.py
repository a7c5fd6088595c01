"""Who is posting: the supplier behind `_login` / `_password` (seeds 001/002), for `/api/dlr`
and `/api/mo` alike."""

from __future__ import annotations

import hashlib

from fastapi import Request

from tidings.api.dlr.parsing import Login
from tidings.api.limits import limit_supplier
from tidings.api.state import app_state
from tidings.routing.service import authenticate_dlr


async def authenticated_supplier(request: Request, login: Login) -> int:
    """The supplier's id, or AuthError. Looked up once per cache TTL per login and
    password digest (never the password itself), and the request counted against the
    supplier's rate limit."""
    state = app_state(request)

    async def supplier_of_login() -> int:
        async with state.sessions() as session:
            return (await authenticate_dlr(session, login.login, login.password)).id

    digest = hashlib.sha256(login.password.encode()).hexdigest()
    supplier_id = await state.dlr_logins.get((login.login, digest), supplier_of_login)
    limit_supplier(request, supplier_id)
    return supplier_id
