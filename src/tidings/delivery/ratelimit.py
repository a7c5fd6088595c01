"""A token bucket: how a lane keeps to its supplier's messages-per-second limit."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(rate, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def take(self, wanted: int) -> int:
        """Wait until at least one token is there; take up to `wanted` of them."""
        while True:
            self._refill()
            if self.tokens >= 1:
                granted = min(wanted, int(self.tokens))
                self.tokens -= granted
                return granted
            await asyncio.sleep((1 - self.tokens) / self.rate)
