"""API keys resolved from memory for a moment, so a request needs no query to authenticate.

A blocked client, a revoked key or a new key takes effect within `ttl` seconds (2 s by
default). Unknown keys are remembered as briefly, so a client hammering with a wrong key does
not hammer the database.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.accounts.service import Caller, authenticate
from tidings.errors import AuthError

_MAX_ENTRIES = 10_000


class CallerCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 2.0) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Caller | AuthError]] = {}

    async def authenticate(self, raw_key: str | None) -> Caller:
        if not raw_key:
            raise AuthError("missing API key")
        now = time.monotonic()
        entry = self._entries.get(raw_key)
        if entry is None or entry[0] <= now:
            found: Caller | AuthError
            try:
                async with self.sessions() as session:
                    found = await authenticate(session, raw_key)
            except AuthError as error:
                found = error
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()  # crude, but bounded; refills in one round of requests
            entry = (now + self.ttl, found)
            self._entries[raw_key] = entry
        result = entry[1]
        if isinstance(result, AuthError):
            raise type(result)(result.message)
        return result
