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
    """Failed sign-ins per (operator name, source address), answered with growing delays.

    The first `free` failures cost nothing; from then on each failure makes the next try from
    that address for that name wait twice as long as the last (1 s, 2 s, 4 s, … at most
    `max_delay`). Keyed by the address too, so someone who knows an operator's name can only
    slow their own guesses: the operator signing in from elsewhere is never locked out.
    Guessing is slow anyway (scrypt). Kept in memory: bounded (emptied when full), a key is
    forgotten `forget_after` its last failure, on a success, or on restart; per API process.
    """

    def __init__(
        self,
        free: int = 5,
        first_delay: timedelta = timedelta(seconds=1),
        max_delay: timedelta = timedelta(minutes=15),
        forget_after: timedelta = timedelta(hours=1),
        max_keys: int = 10_000,
    ) -> None:
        self.free = free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_keys = max_keys
        # (name, address) -> (failures, time of the last one)
        self._failures: dict[tuple[str, str], tuple[int, datetime]] = {}

    def blocked_until(self, name: str, address: str, now: datetime) -> datetime | None:
        """When `address` may next try `name`; None: now."""
        key = (name, address)
        entry = self._failures.get(key)
        if entry is None:
            return None
        failures, last = entry
        if now - last >= self.forget_after:
            del self._failures[key]
            return None
        if failures < self.free:
            return None
        delay = min(self.max_delay, self.first_delay * 2 ** (failures - self.free))
        until = last + delay
        return until if until > now else None

    def failed(self, name: str, address: str, now: datetime) -> None:
        key = (name, address)
        if key not in self._failures and len(self._failures) >= self.max_keys:
            self._failures.clear()
        failures, _ = self._failures.get(key, (0, now))
        self._failures[key] = (failures + 1, now)

    def succeeded(self, name: str, address: str) -> None:
        self._failures.pop((name, address), None)
