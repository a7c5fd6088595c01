"""The console's HTTP edge: /console pages (Jinja2), its JSON for live numbers, its assets.

Every page needs a signed-in operator; without one, pages redirect to the login form and
the JSON answers 401. Every POST checks a CSRF token. The console writes nothing but
sessions: it is for looking.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.api.state import AppState, app_state
from tidings.config import Settings
from tidings.console import service
from tidings.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    LoginThrottle,
    Signer,
    csrf_valid,
)
from tidings.console.inbound import inbound_page
from tidings.console.repository import create_reader_engine
from tidings.db.engine import create_sessionmaker, transaction
from tidings.db.ids import MAX_ROW_ID, parse_id
from tidings.errors import AuthError
from tidings.operators import service as operators
from tidings.operators.models import Operator

PREFIX = "/console"
STATIC = {
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
    "console.js": "text/javascript",
    "console.css": "text/css",
    "uPlot.LICENSE": "text/plain",
}
SECURITY_HEADERS = {
    # No inline script runs: chart data travels in <script type="application/json">.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class ConsoleWeb:
    """What the console keeps for the life of the app: templates, assets, its signer."""

    settings: Settings
    templates: Environment
    assets: dict[str, bytes] = field(default_factory=dict)
    traffic: service.BucketCache = field(default_factory=service.BucketCache)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    _signer: Signer | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _reads: async_sessionmaker[AsyncSession] | None = None

    def reads(self, state: AppState) -> async_sessionmaker[AsyncSession]:
        """Sessions for the pages' reads: the read replica's when there is one (the app's
        `reads`, TIDINGS_DATABASE_REPLICA_URL, docs/scale-out.md); else a read-only engine
        of our own beside the gateway's connections (on SQLite its one connection writes)."""
        if state.replica is not None:
            return state.reads
        if self._reads is None:
            self._reads = create_sessionmaker(create_reader_engine(self.settings.database_url))
        return self._reads

    async def signer(self, state: AppState) -> Signer:
        """The configured secret, else the one stored in the database (created once)."""
        if self._signer is None:
            async with self._lock:
                if self._signer is None:
                    secret = self.settings.console_secret
                    if secret is None:
                        async with transaction(state.sessions) as session:
                            secret = await operators.session_secret(session, state.clock)
                    self._signer = Signer(secret)
        return self._signer

    def asset(self, name: str) -> bytes:
        if name not in self.assets:
            self.assets[name] = (
                resources.files("tidings.console").joinpath("static", name).read_bytes()
            )
        return self.assets[name]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tidings.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"
    env.filters["clock"] = lambda moment: moment.strftime("%H:%M:%S") if moment else "—"
    env.filters["percent"] = lambda rate: "—" if rate is None else f"{rate * 100:.1f} %"
    env.filters["tojson_data"] = lambda value: json.dumps(value).replace("</", "<\\/")
    env.globals["colours"] = service.STATUS_COLOURS
    env.globals["prefix"] = PREFIX  # imported macros see globals, not the render context
    return env


@dataclass(frozen=True)
class Signed:
    session: ConsoleSession
    operator: Operator


def build_router(settings: Settings) -> APIRouter:
    web = ConsoleWeb(settings, _environment())
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    def page(
        request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        body = web.templates.get_template(template).render(**context)
        return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)

    async def signed_in(request: Request) -> Signed | None:
        state = app_state(request)
        signer = await web.signer(state)
        session = signer.read_session(request.cookies.get(SESSION_COOKIE), state.clock.now())
        if session is None:
            return None
        async with transaction(web.reads(app_state(request))) as db:
            operator = await operators.find_operator(db, session.operator_id)
        if (
            operator is None
            or operator.name != session.operator_name
            or signer.fingerprint(operator.password_hash) != session.password_fingerprint
        ):
            return None
        return Signed(session, operator)

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)

    def forbidden(request: Request, reason: str) -> HTMLResponse:
        return page(request, "forbidden.html", status_code=403, reason=reason, signed=None)

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        return Response(
            web.asset(name),
            media_type=STATIC[name],
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # Signing in and out.

    @router.get("/login")
    async def login_form(request: Request, next: str = PREFIX) -> Response:
        return await _login_page(request, next, error=None, status_code=200)

    async def _login_page(
        request: Request, next_url: str, *, error: str | None, status_code: int
    ) -> Response:
        state = app_state(request)
        signer = await web.signer(state)
        async with transaction(web.reads(app_state(request))) as db:
            count = await operators.count_operators(db)
        token = signer.new_login_token(state.clock.now())
        response = page(
            request,
            "login.html",
            status_code=status_code if count else 401,
            signed=None,
            csrf=token,
            next=_safe_next(next_url),
            error=error,
            no_operators=count == 0,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=1800,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        state = app_state(request)
        signer = await web.signer(state)
        form = await request.form()
        next_url = _safe_next(str(form.get("next") or PREFIX))
        now = state.clock.now()
        if not signer.login_token_valid(
            request.cookies.get(LOGIN_COOKIE), _text(form.get("csrf")), now
        ):
            return forbidden(request, "The sign-in form expired or did not come from this site.")
        name = (_text(form.get("name")) or "")[:64]
        password = _text(form.get("password")) or ""
        # Behind a proxy this is the proxy's address unless uvicorn is told to trust its
        # X-Forwarded-For (FORWARDED_ALLOW_IPS); docs/console.md.
        address = request.client.host if request.client else "unknown"
        blocked = web.throttle.blocked_until(name, address, now)
        if blocked is not None:
            seconds = max(1, math.ceil((blocked - now).total_seconds()))
            message = f"Too many failed sign-ins for this name; try again in {seconds} s."
            answer = await _login_page(request, next_url, error=message, status_code=429)
            answer.headers["Retry-After"] = str(seconds)
            return answer
        async with transaction(web.reads(app_state(request))) as db:
            candidate = await operators.load_for_login(db, name)
        try:
            operator = await asyncio.to_thread(operators.check_password, candidate, password)
        except AuthError as error:
            web.throttle.failed(name, address, now)
            return await _login_page(request, next_url, error=error.message, status_code=401)
        web.throttle.succeeded(name, address)
        async with transaction(state.sessions) as db:
            await operators.record_login(db, state.clock, operator.id)
        expires = now + timedelta(hours=web.settings.console_session_hours)
        _, cookie = signer.new_session(operator.id, operator.name, operator.password_hash, expires)
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(web.settings.console_session_hours * 3600),
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        form = await request.form()
        if not csrf_valid(signed.session, _text(form.get("csrf"))):
            return forbidden(request, "This request did not come from a console page.")
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    # Pages.

    @router.get("")
    @router.get("/")
    async def overview_page(request: Request, window: str = "1h") -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        state = app_state(request)
        async with transaction(web.reads(app_state(request))) as db:
            data = await service.overview(db, state.clock.now(), window, web.traffic)
        return page(request, "overview.html", signed=signed, view=data, countries=state.countries)

    @router.get("/api/live")
    async def live(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return JSONResponse(
                {"error": "sign in at /console/login"}, status_code=401, headers=SECURITY_HEADERS
            )
        state = app_state(request)
        async with transaction(web.reads(app_state(request))) as db:
            data = await service.live(db, state.clock.now(), web.traffic)
        return JSONResponse(data, headers=SECURITY_HEADERS)

    @router.get("/clients")
    async def clients_page(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        state = app_state(request)
        async with transaction(web.reads(app_state(request))) as db:
            clients = await service.client_list(db, state.clock.now())
            optouts = await service.optout_counts(db)
        return page(request, "clients.html", signed=signed, clients=clients, optouts=optouts)

    @router.get("/clients/{client_id}")
    async def client_page(request: Request, client_id: str) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        state = app_state(request)
        number = parse_id(client_id, MAX_ROW_ID)
        async with transaction(web.reads(app_state(request))) as db:
            data = (
                None if number is None else await service.client_page(db, state.clock.now(), number)
            )
        if data is None:
            return page(request, "missing.html", 404, signed=signed, what=f"client {client_id}")
        return page(request, "client.html", signed=signed, view=data)

    @router.get("/margins")
    async def margins_page(request: Request, period: str = "day") -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        state = app_state(request)
        async with transaction(web.reads(app_state(request))) as db:
            data = await service.margins(db, state.clock.now(), period)
        return page(request, "margins.html", signed=signed, view=data)

    @router.get("/inbound")
    async def inbound_list(request: Request, unrouted: str = "") -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        async with transaction(web.reads(app_state(request))) as db:
            data = await inbound_page(db, unrouted_only=unrouted not in ("", "0"))
        return page(request, "inbound.html", signed=signed, view=data)

    @router.get("/messages")
    async def search_page(request: Request, q: str = "") -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        async with transaction(web.reads(app_state(request))) as db:
            found = await service.search(db, q)
        if len(found) == 1:
            return RedirectResponse(f"{PREFIX}/messages/{found[0].id}", status_code=303)
        return page(request, "search.html", signed=signed, q=q, found=found)

    @router.get("/messages/{message_id}")
    async def message_page(request: Request, message_id: str) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_login(request)
        number = parse_id(message_id)
        async with transaction(web.reads(app_state(request))) as db:
            history = None if number is None else await service.message_history(db, number)
        if history is None:
            return page(request, "missing.html", 404, signed=signed, what=f"message {message_id}")
        return page(request, "message.html", signed=signed, history=history)

    return router


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _safe_next(target: str) -> str:
    """Only paths inside the console: a login link must not send anyone elsewhere."""
    if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX
