"""A small time-to-live cache for lookups every request makes (API keys, credentials).

Values and TidingsErrors are both remembered for `ttl` seconds: a wrong key asked for again
and again costs one query per `ttl`, not one per request. Concurrent requests for a key that
is not cached share one load (otherwise every request in flight when an entry expires runs
its own query). Bounded: when full, it is emptied (it refills within one round of
requests), which is cheaper than tracking recency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from tidings.errors import TidingsError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V | TidingsError]] = {}
        self._loading: dict[K, asyncio.Future[V | TidingsError]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            entry = (now + self.ttl, await self._load_once(key, load, now))
        result = entry[1]
        if isinstance(result, TidingsError):
            # A fresh instance each time: raising one object twice chains its tracebacks.
            raise type(result)(result.message, reason=result.reason, field=result.field)
        return result

    async def _load_once(
        self, key: K, load: Callable[[], Awaitable[V]], now: float
    ) -> V | TidingsError:
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[V | TidingsError] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value: V | TidingsError
            try:
                value = await load()
            except TidingsError as error:
                value = error
            if self.ttl > 0:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl, value)
            future.set_result(value)
            return value
        except BaseException as failure:  # the database failed: the waiters fail with it
            future.set_exception(failure)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._loading[key]
