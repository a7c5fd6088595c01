"""Failed binds held off: password guessing over SMPP gets slower with every wrong guess.

Binds from one source address are checked one at a time, and each failed one is answered
only after a delay that doubles with the failures seen (from that address or for that
system_id, whichever has more) up to a cap: ``delay(n) = min(base * 2**(n-1), cap)``. With
the defaults (0.25 s, cap 4 s) 50 wrong passwords from one address take over 180 s, and as
the address's binds wait for each other, opening many connections at once does not help.

A correct password is answered at once, whatever the system_id's count: a guesser
elsewhere cannot lock the real client out (its own address is held off by its own count).
Counts are forgotten ``forget_after`` seconds after the last failure. The first failure of
a count answers as the check did (ESME_RINVPASWD); later ones, throttled, ESME_RBINDFAIL.
Each failure is logged with the address and counted in ``tidings_smpp_bind_failures``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tidings.connectors.smpp.pdu import CommandStatus

log = logging.getLogger("tidings.smpp.server")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BindDelays:
    base: float = 0.25  # seconds before answering the first failure
    cap: float = 4.0
    forget_after: float = 600.0

    def delay(self, failures: int) -> float:
        """How long the ``failures``-th failure in a row waits for its answer."""
        if failures <= 0:
            return 0.0
        return min(self.base * 2.0 ** min(failures - 1, 60), self.cap)


@dataclass(slots=True)
class _Count:
    failures: int = 0
    last: float = 0.0


class BindGuard:
    def __init__(
        self,
        delays: BindDelays,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.delays = delays
        self.now = now
        self.sleep = sleep
        self.on_failure = on_failure  # the metric
        self._by_address: dict[str, _Count] = {}
        self._by_system_id: dict[str, _Count] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def failures(self, address: str, system_id: str) -> int:
        return max(
            self._current(self._by_address, address).failures,
            self._current(self._by_system_id, system_id).failures,
        )

    async def attempt(
        self,
        address: str,
        system_id: str,
        check: Callable[[], Awaitable[tuple[int, T | None]]],
    ) -> tuple[int, T | None]:
        """Run the credential check in this address's turn; a failure is answered late."""
        lock = self._locks.get(address)
        if lock is None:
            if len(self._locks) >= 10_000:  # a scan from many addresses: drop the idle ones
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[address] = asyncio.Lock()
        async with lock:
            status, found = await check()
            if found is not None:
                return status, found
            failures = self._failed(address, system_id)
            delay = self.delays.delay(failures)
            log.warning(
                "SMPP bind of %r from %s refused (0x%08X), failure %d, answered in %.2f s",
                system_id,
                address,
                status,
                failures,
                delay,
            )
            self.on_failure()
            await self.sleep(delay)
            if failures > 1:
                status = CommandStatus.ESME_RBINDFAIL
            return status, None

    def _failed(self, address: str, system_id: str) -> int:
        now = self.now()
        counts = [self._current(self._by_address, address)]
        if system_id:
            counts.append(self._current(self._by_system_id, system_id))
        for count in counts:
            count.failures += 1
            count.last = now
        self._by_address[address] = counts[0]
        if system_id:
            self._by_system_id[system_id] = counts[1]
        self._forget(now)
        return max(c.failures for c in counts)

    def _current(self, counts: dict[str, _Count], key: str) -> _Count:
        count = counts.get(key)
        if count is None or self.now() - count.last > self.delays.forget_after:
            return _Count()
        return count

    def _forget(self, now: float) -> None:
        """Drop stale counts (bounded memory under a scan from many addresses)."""
        if len(self._by_address) + len(self._by_system_id) < 10_000:
            return
        for counts in (self._by_address, self._by_system_id):
            for key in [k for k, c in counts.items() if now - c.last > self.delays.forget_after]:
                del counts[key]
