"""Request limits at the HTTP edge: the body size, and each caller's request rate.

* `BodySizeLimit` is an ASGI wrapper: a body declared larger than the limit is refused with
  413 before a byte of it is read; a chunked body is read up to the limit and refused as soon
  as it passes it. The answer is in the format of the API the path belongs to.
* `RateLimiter` keeps one token bucket per caller (a client, a supplier) in this process's
  memory. It limits requests, not money or state, so losing it on a restart costs nothing;
  with several API processes each one counts its own requests (docs/api-hardening.md).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.config import Settings
from tidings.errors import AuthError, RateLimited

# --- Rate -----------------------------------------------------------------------------------


_EPSILON = 1e-9


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets: `rate` requests a second, up to `rate * burst_seconds` at once.

    `now` is a monotonic clock in seconds (injectable, so tests move time instead of
    sleeping). A rate of 0 means no limit. Buckets of callers idle long enough to have
    refilled are dropped now and then, so memory follows the callers actually active.
    """

    def __init__(
        self,
        rate: float,
        burst_seconds: float = 2.0,
        overrides: Mapping[Any, float] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst_seconds = burst_seconds
        self.overrides: dict[Any, float] = dict(overrides or {})
        self.now = now
        self._buckets: dict[Hashable, _Bucket] = {}
        self._next_sweep = 0.0

    def rate_for(self, key: Hashable) -> float:
        rate: float = self.overrides.get(key, self.rate)
        return rate

    def acquire(self, key: Hashable) -> float:
        """Take one request from `key`'s bucket: 0 if it may go, else the seconds to wait."""
        rate = self.rate_for(key)
        if rate <= 0:
            return 0.0
        capacity = max(1.0, rate * self.burst_seconds)
        now = self.now()
        self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        else:
            # max(): a clock that steps back must not take tokens away.
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(capacity, bucket.tokens + elapsed * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0 - _EPSILON:  # refills are sums of float products
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        for key, bucket in list(self._buckets.items()):
            rate = self.rate_for(key)
            if rate <= 0 or now - bucket.updated >= self.burst_seconds:
                del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; never 0, which would invite an immediate retry."""
    return str(max(1, math.ceil(seconds)))


@dataclass(slots=True)
class RateLimits:
    """The limiters of one app: clients (client API and DR API) and suppliers (/api/dlr)."""

    clients: RateLimiter
    suppliers: RateLimiter

    @classmethod
    def from_settings(
        cls, settings: Settings, now: Callable[[], float] = time.monotonic
    ) -> RateLimits:
        return cls(
            clients=RateLimiter(
                settings.rate_limit,
                settings.rate_burst_seconds,
                dict(settings.client_rate_limits),
                now,
            ),
            suppliers=RateLimiter(
                settings.supplier_rate_limit, settings.rate_burst_seconds, {}, now
            ),
        )


def _limits(request: Request) -> RateLimits | None:
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    return limits


def limit_client(request: Request, client_id: int) -> None:
    """Raise RateLimited when the client has spent its request rate for now."""
    limits = _limits(request)
    if limits is not None:
        _charge(limits.clients, client_id, f"client {client_id}")


def limit_supplier(request: Request, supplier_id: int) -> None:
    limits = _limits(request)
    if limits is not None:
        _charge(limits.suppliers, supplier_id, f"supplier {supplier_id}")


def _charge(limiter: RateLimiter, key: int, who: str) -> None:
    wait = limiter.acquire(key)
    if wait > 0:
        raise RateLimited(
            f"{who} sends more than {limiter.rate_for(key):g} requests a second; "
            f"retry in {retry_after_header(wait)} s",
            retry_after=wait,
        )


async def limit_api_key(request: Request) -> None:
    """The client API's limit, before the handler runs: the key names the client.

    A request without a usable key is left to the handler, which answers error 1; the key
    is resolved through the same short-lived cache the handler then uses.
    """
    from tidings.api.state import app_state  # the app state imports the API's collaborators

    key = request.headers.get("x-api-key")
    limits = _limits(request)
    if not key or limits is None or (limits.clients.rate <= 0 and not limits.clients.overrides):
        return
    try:
        caller = await app_state(request).callers.authenticate(key)
    except AuthError:
        return
    _charge(limits.clients, caller.client_id, f"client {caller.client_id}")


# --- Size -----------------------------------------------------------------------------------

_DR_PATH = re.compile(r"^/[^/]+/api/dr(/|$)")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def too_large_response(path: str, max_bytes: int) -> Response:
    """413 in the format of the API that `path` belongs to."""
    detail = f"the request body is larger than {max_bytes} bytes"
    if path == "/api/dlr" or path.startswith("/api/dlr/"):
        from tidings.api.dlr.wire import error, errors_response

        return errors_response(413, [error("payload_too_large", detail)])
    if _DR_PATH.match(path):
        from tidings.api.dr.wire import error_response as dr_error

        return dr_error(413, "too_large", detail)
    from tidings.api.client.wire import error_response as seed_error

    answer = seed_error(12, detail)
    answer.status_code = 413
    return answer


class BodySizeLimit:
    """ASGI middleware refusing request bodies over `max_bytes` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read up to the limit before the app sees any of it.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await too_large_response(scope["path"], self.max_bytes)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
