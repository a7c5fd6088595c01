"""A small time-to-live cache for lookups every request makes (API keys, credentials).

Values and TidingsErrors are both remembered for `ttl` seconds: a wrong key asked for again
and again costs one query per `ttl`, not one per request. Bounded: when full, it is emptied
(it refills within one round of requests), which is cheaper than tracking recency.
"""

from __future__ import annotations

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

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            value: V | TidingsError
            try:
                value = await load()
            except TidingsError as error:
                value = error
            if self.ttl > 0:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl, value)
            entry = (now + self.ttl, value)
        result = entry[1]
        if isinstance(result, TidingsError):
            # A fresh instance each time: raising one object twice chains its tracebacks.
            raise type(result)(result.message, reason=result.reason, field=result.field)
        return result
