"""Client accounts: creation, keys, authentication, settings."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import ApiKey, Client
from tidings.accounts.repository import ApiKeyRepository, ClientRepository
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.errors import AuthError, ClientBlocked, InvalidRequest, NotFound
from tidings.webhooks.signing import new_secret as new_webhook_secret

MAX_TARIFF = 9


class KeyKind(StrEnum):
    LIVE = "live"
    TEST = "test"


def hash_key(raw_key: str) -> str:
    # Keys are long random tokens, so a fast unsalted hash is enough (no dictionary to try).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_raw_key(kind: KeyKind) -> str:
    return f"{kind.value}_{secrets.token_urlsafe(24)}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A login and password pair, shown once: only the password's SHA-256 is kept."""

    login: str
    password: str


def new_password() -> str:
    # Random like an API key, so the same fast unsalted hash is enough.
    return secrets.token_urlsafe(24)


def new_credentials(prefix: str, owner_id: int) -> tuple[Credentials, str]:
    """A fresh login and password for an owner, and the password hash to store."""
    credentials = Credentials(
        login=f"{prefix}{owner_id}-{secrets.token_hex(4)}", password=new_password()
    )
    return credentials, hash_key(credentials.password)


_NO_HASH = hash_key("")


def password_matches(password: str, stored_hash: str | None) -> bool:
    """Constant-time check; hashes even when there is nothing to compare with."""
    return hmac.compare_digest(hash_key(password), stored_hash or _NO_HASH) and bool(stored_hash)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling the client API, resolved from their key."""

    client_id: int
    key_kind: KeyKind
    tariff: int

    @property
    def is_test(self) -> bool:
        return self.key_kind is KeyKind.TEST


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: Client
    live_key: str
    test_key: str


def validate_tariff(tariff: int) -> int:
    if not 0 <= tariff <= MAX_TARIFF:
        raise InvalidRequest(f"tariff must be 0 to {MAX_TARIFF}", reason="bad_tariff")
    return tariff


async def create_client(
    session: AsyncSession,
    clock: Clock,
    *,
    name: str,
    balance: Decimal = Decimal(0),
    tariff: int = 0,
    callback_url: str | None = None,
) -> CreatedClient:
    clients = ClientRepository(session)
    if await clients.get_by_name(name) is not None:
        raise InvalidRequest(f"a client named {name!r} exists already", reason="duplicate")
    now = clock.now()
    client = await clients.add(
        Client(
            name=name,
            balance=balance,
            tariff=validate_tariff(tariff),
            blocked=False,
            callback_url=callback_url,
            created_at=now,
            webhook_secret=new_webhook_secret(),
        )
    )
    if balance:
        await LedgerRepository(session).add_many(
            [(client.id, balance, "top_up", "initial balance")], now
        )
    live = await issue_key(session, clock, client.id, KeyKind.LIVE)
    test = await issue_key(session, clock, client.id, KeyKind.TEST)
    return CreatedClient(client=client, live_key=live, test_key=test)


async def issue_key(session: AsyncSession, clock: Clock, client_id: int, kind: KeyKind) -> str:
    raw = new_raw_key(kind)
    await ApiKeyRepository(session).add(
        ApiKey(
            client_id=client_id,
            key_hash=hash_key(raw),
            kind=kind.value,
            hint=raw[:9],
            created_at=clock.now(),
        )
    )
    return raw


async def authenticate(session: AsyncSession, raw_key: str | None) -> Caller:
    if not raw_key:
        raise AuthError("missing API key")
    found = await ApiKeyRepository(session).find_active(hash_key(raw_key))
    if found is None:
        raise AuthError("invalid API key")
    key, client = found
    if client.blocked:
        raise ClientBlocked("client is blocked")
    return Caller(client_id=client.id, key_kind=KeyKind(key.kind), tariff=client.tariff)


async def require_client(session: AsyncSession, client_id: int) -> Client:
    client = await ClientRepository(session).get(client_id)
    if client is None:
        raise NotFound(f"no client {client_id}")
    return client


async def set_balance(
    session: AsyncSession, clock: Clock, client_id: int, balance: Decimal
) -> Client:
    client = await require_client(session, client_id)
    delta = balance - client.balance
    client.balance = balance
    if delta:
        await LedgerRepository(session).add_many(
            [(client_id, delta, "adjustment", "set by operator")], clock.now()
        )
    await session.flush()
    return client


async def top_up(session: AsyncSession, clock: Clock, client_id: int, amount: Decimal) -> Client:
    await require_client(session, client_id)
    await ClientRepository(session).credit(client_id, amount)
    await LedgerRepository(session).add_many([(client_id, amount, "top_up", None)], clock.now())
    client = await require_client(session, client_id)
    await session.refresh(client)
    return client


# --- Delivery-report query API credentials (seed 000) -----------------------------------


async def issue_dr_credentials(session: AsyncSession, client_id: int) -> Credentials:
    """New HTTP Basic credentials for the DR API; the previous ones stop working."""
    client = await require_client(session, client_id)
    credentials, client.dr_password_hash = new_credentials("dr", client.id)
    client.dr_login = credentials.login
    await session.flush()
    return credentials


async def authenticate_dr(session: AsyncSession, login: str, password: str) -> Client:
    """The client these DR credentials belong to; AuthError when they belong to nobody."""
    client = await ClientRepository(session).get_by_dr_login(login) if login else None
    matches = password_matches(password, client.dr_password_hash if client else None)
    if client is None or not matches:
        raise AuthError("wrong DR login or password")
    if client.blocked:
        raise ClientBlocked("client is blocked")
    return client


# --- SMPP server credentials ----------------------------------------------------------------


async def issue_smpp_credentials(session: AsyncSession, client_id: int) -> Credentials:
    """New SMPP bind credentials; the previous ones stop working (open binds stay up).

    SMPP 3.4 limits system_id to 15 and password to 8 characters: the password is 8 random
    URL-safe characters (48 bits), hashed like API keys.
    """
    client = await require_client(session, client_id)
    login = f"c{client.id}-{secrets.token_hex(3)}"[:15]
    password = secrets.token_urlsafe(6)
    client.smpp_system_id = login
    client.smpp_password_hash = hash_key(password)
    await session.flush()
    return Credentials(login=login, password=password)
