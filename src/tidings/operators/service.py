"""Operator accounts: creation, password hashing (scrypt) and sign-in checks.

Passwords are hashed with the standard library's scrypt (memory-hard, so a leaked table is
expensive to attack), with a random salt per operator; the cost parameters are stored in
the hash. Checking a password costs tens of milliseconds of CPU on purpose, so callers on
an event loop run `verify_password` in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.clock import Clock
from tidings.errors import AuthError, Conflict, InvalidRequest, NotFound
from tidings.operators.models import Operator
from tidings.operators.repository import ConsoleSecretRepository, OperatorRepository

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 10
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * 1024 * 1024,
        dklen=_HASH_BYTES,
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the name is unknown, so that a wrong name takes as long as a wrong
# password and the timing does not tell which operator names exist.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            "an operator name is 1-64 letters, digits or . _ @ - (starting with a letter or digit)",
            field="name",
        )
    return name


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(15)


@dataclass(frozen=True)
class CreatedOperator:
    operator: Operator
    password: str  # shown once; only its hash is stored


async def create_operator(
    session: AsyncSession, clock: Clock, *, name: str, password: str | None = None
) -> CreatedOperator:
    validate_name(name)
    chosen = validate_password(password) if password is not None else generate_password()
    operators = OperatorRepository(session)
    if await operators.by_name(name) is not None:
        raise Conflict(f"operator {name!r} already exists", reason="duplicate_operator")
    operator = await operators.add(name, hash_password(chosen), clock.now())
    return CreatedOperator(operator, chosen)


async def set_operator_password(session: AsyncSession, name: str, password: str | None) -> str:
    chosen = validate_password(password) if password is not None else generate_password()
    if not await OperatorRepository(session).set_password(name, hash_password(chosen)):
        raise NotFound(f"no operator {name!r}")
    return chosen


async def list_operators(session: AsyncSession) -> Sequence[Operator]:
    return await OperatorRepository(session).all()


async def delete_operator(session: AsyncSession, name: str) -> None:
    if not await OperatorRepository(session).delete(name):
        raise NotFound(f"no operator {name!r}")


async def count_operators(session: AsyncSession) -> int:
    return await OperatorRepository(session).count()


async def find_operator(session: AsyncSession, operator_id: int) -> Operator | None:
    return await OperatorRepository(session).by_id(operator_id)


def check_password(operator: Operator | None, password: str) -> Operator:
    """The operator if `password` is theirs; AuthError otherwise (same cost either way).

    CPU-bound (scrypt): run it in a thread from async code.
    """
    stored = operator.password_hash if operator is not None else _DUMMY_HASH
    if not verify_password(password, stored) or operator is None:
        raise AuthError("wrong operator name or password")
    return operator


async def load_for_login(session: AsyncSession, name: str) -> Operator | None:
    return await OperatorRepository(session).by_name(name)


async def record_login(session: AsyncSession, clock: Clock, operator_id: int) -> None:
    await OperatorRepository(session).record_login(operator_id, clock.now())


SESSION_SECRET = "session"


async def session_secret(session: AsyncSession, clock: Clock) -> str:
    """The console's cookie-signing key: generated on first use and kept in the database."""
    return await ConsoleSecretRepository(session).get_or_create(
        SESSION_SECRET, secrets.token_urlsafe(48), clock.now()
    )
