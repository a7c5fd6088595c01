"""API keys resolved from memory for a moment, so a request needs no query to authenticate.

A blocked client, a revoked key or a new key takes effect within `ttl` seconds (2 s by
default, `TIDINGS_CACHE_TTL`).
"""

from __future__ import annotations

import hashlib

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.accounts.service import Caller, authenticate
from tidings.errors import AuthError
from tidings.ttlcache import TtlCache


class CallerCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 2.0) -> None:
        self.sessions = sessions
        self._cache: TtlCache[str, Caller] = TtlCache(ttl)

    async def authenticate(self, raw_key: str | None) -> Caller:
        if not raw_key:
            raise AuthError("missing API key")

        async def load() -> Caller:
            async with self.sessions() as session:
                return await authenticate(session, raw_key)

        # Keyed by a digest: the cache never holds a usable key.
        return await self._cache.get(hashlib.sha256(raw_key.encode()).hexdigest(), load)
