"""Signed console session cookies and CSRF tokens (pure: no I/O).

A session cookie is `payload.signature`: the payload is base64url JSON (operator id, name,
a fingerprint of the password hash, the CSRF token, the expiry), the signature an
HMAC-SHA256 under a key derived from the console secret. Changing an operator's password
changes the fingerprint, which ends their sessions; deleting the operator ends them too
(the router looks the operator up on every request).

Every POST carries the session's CSRF token in a form field; the login form, which has no
session yet, uses a signed double-submit token: the same value in a short-lived cookie and
in the form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_COOKIE = "tidings_console"
LOGIN_COOKIE = "tidings_console_login"
LOGIN_TOKEN_MINUTES = 30


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _same(left: str, right: str) -> bool:
    # Bytes: compare_digest refuses str with non-ASCII characters, and cookies may hold any.
    return hmac.compare_digest(left.encode("utf-8"), right.encode("utf-8"))


@dataclass(frozen=True)
class ConsoleSession:
    operator_id: int
    operator_name: str
    password_fingerprint: str
    csrf: str
    expires_at: int  # Unix seconds


class Signer:
    """Signs and checks console tokens with keys derived from one secret."""

    def __init__(self, secret: str) -> None:
        root = secret.encode("utf-8")
        self._session_key = hmac.new(root, b"tidings console session", hashlib.sha256).digest()
        self._login_key = hmac.new(root, b"tidings console login", hashlib.sha256).digest()
        self._fingerprint_key = hmac.new(root, b"tidings console pw", hashlib.sha256).digest()

    def fingerprint(self, password_hash: str) -> str:
        digest = hmac.new(self._fingerprint_key, password_hash.encode(), hashlib.sha256)
        return _b64(digest.digest()[:12])

    # Sessions.

    def new_session(
        self, operator_id: int, operator_name: str, password_hash: str, expires: datetime
    ) -> tuple[ConsoleSession, str]:
        session = ConsoleSession(
            operator_id=operator_id,
            operator_name=operator_name,
            password_fingerprint=self.fingerprint(password_hash),
            csrf=secrets.token_urlsafe(24),
            expires_at=int(expires.timestamp()),
        )
        payload = {
            "o": session.operator_id,
            "n": session.operator_name,
            "p": session.password_fingerprint,
            "c": session.csrf,
            "e": session.expires_at,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return session, f"{body}.{self._sign(self._session_key, body)}"

    def read_session(self, cookie: str | None, now: datetime) -> ConsoleSession | None:
        body = self._verified(self._session_key, cookie)
        if body is None:
            return None
        try:
            payload = json.loads(_unb64(body))
            session = ConsoleSession(
                operator_id=int(payload["o"]),
                operator_name=str(payload["n"]),
                password_fingerprint=str(payload["p"]),
                csrf=str(payload["c"]),
                expires_at=int(payload["e"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= now.timestamp():
            return None
        return session

    # The login form's double-submit token.

    def new_login_token(self, now: datetime) -> str:
        expires = int((now + timedelta(minutes=LOGIN_TOKEN_MINUTES)).timestamp())
        body = f"{secrets.token_urlsafe(18)}~{expires}"
        return f"{body}.{self._sign(self._login_key, body)}"

    def login_token_valid(self, cookie: str | None, submitted: str | None, now: datetime) -> bool:
        if not cookie or not submitted or not _same(cookie, submitted):
            return False
        body = self._verified(self._login_key, cookie)
        if body is None:
            return False
        _, _, expires = body.rpartition("~")
        return expires.isdigit() and int(expires) > now.timestamp()

    # Signatures.

    @staticmethod
    def _sign(key: bytes, body: str) -> str:
        return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())

    def _verified(self, key: bytes, token: str | None) -> str | None:
        if not token or token.count(".") != 1:
            return None
        body, signature = token.split(".")
        if not body.isascii() or not _same(self._sign(key, body), signature):
            return None
        return body


def csrf_valid(session: ConsoleSession, submitted: str | None) -> bool:
    return bool(submitted) and _same(session.csrf, submitted or "")


class LoginThrottle:
    """At most `limit` failed sign-ins per operator name in `window`, per process.

    Guessing passwords is already slow (scrypt); this bounds it per name. Kept in memory:
    bounded (emptied when full), forgotten on restart, per API process.
    """

    def __init__(
        self,
        limit: int = 10,
        window: timedelta = timedelta(minutes=15),
        max_names: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_names = max_names
        self._failures: dict[str, list[datetime]] = {}

    def _recent(self, name: str, now: datetime) -> list[datetime]:
        recent = [t for t in self._failures.get(name, []) if t > now - self.window]
        if recent:
            self._failures[name] = recent
        else:
            self._failures.pop(name, None)
        return recent

    def blocked_until(self, name: str, now: datetime) -> datetime | None:
        recent = self._recent(name, now)
        if len(recent) < self.limit:
            return None
        return recent[-self.limit] + self.window

    def failed(self, name: str, now: datetime) -> None:
        if name not in self._failures and len(self._failures) >= self.max_names:
            self._failures.clear()
        self._failures.setdefault(name, []).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
