"""The HLR worker: claims due lookups, asks their providers, records the answers.

Each round is two transactions around the providers' calls, like the delivery lanes: claim
(a lease: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`), ask, record. A worker
killed mid-round loses nothing: its lookups are claimed again when the lease runs out. Any
number of workers can share one PostgreSQL. Providers are the enabled suppliers of `hlr_*`
kinds, re-read every `refresh_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.config import Settings
from tidings.connectors.hlr.base import HlrAnswer, HlrProvider, HlrQuery, Outcome
from tidings.connectors.hlr.registry import HLR_KINDS, build_hlr_provider
from tidings.db.engine import transaction
from tidings.db.outage import Backoff, pause_after_failure, retry_while_unavailable
from tidings.hlr.repository import ClaimedLookup, HlrRepository
from tidings.hlr.results import Recorded, RetryPolicy, record_answers
from tidings.numbering import CountryTable
from tidings.routing.repository import SupplierRepository
from tidings.wakeups import HLR, sleep_until_woken, wakeups_of

log = logging.getLogger("tidings.hlr")


@dataclass(frozen=True, slots=True)
class HlrOptions:
    batch_size: int = 500
    poll_interval: float = 0.05
    lease_seconds: float = 60.0
    refresh_interval: float = 5.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> HlrOptions:
        return cls(
            batch_size=settings.dispatch_batch_size,
            poll_interval=settings.poll_interval,
            lease_seconds=settings.lease_seconds,
            refresh_interval=settings.supplier_refresh_interval,
        )


class HlrWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        countries: CountryTable,
        options: HlrOptions | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.countries = countries
        self.options = options or HlrOptions()
        self.providers: dict[int, HlrProvider] = {}
        self._task: asyncio.Task[None] | None = None
        # Woken by the commits that add lookups, in any process (tidings/wakeups.py).
        hub = wakeups_of(sessions)
        self._wake = hub.subscribe(HLR) if hub is not None else asyncio.Event()
        self._idle_wait = hub.idle_poll if hub is not None else self.options.poll_interval
        self._refreshed = 0.0

    async def start(self) -> None:
        await self.refresh_providers()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hlr-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for provider in self.providers.values():
            await provider.stop()
        self.providers.clear()

    def wake(self) -> None:
        """Look for due work now (a request was just accepted in this process)."""
        self._wake.set()

    async def refresh_providers(self) -> None:
        async with self.sessions() as session:
            suppliers = {
                s.id: s
                for s in await SupplierRepository(session).list(enabled_only=True)
                if s.kind in HLR_KINDS
            }
        for provider_id in set(self.providers) - set(suppliers):
            await self.providers.pop(provider_id).stop()
        for provider_id, supplier in suppliers.items():
            if provider_id in self.providers:
                continue
            try:
                provider = build_hlr_provider(supplier, self.countries)
                await provider.start()
            except Exception:
                log.exception("HLR supplier %s could not start", supplier.name)
                continue
            self.providers[provider_id] = provider
        self._refreshed = time.monotonic()

    async def step(self) -> Recorded:
        """One round: claim due lookups, ask their providers, record the answers."""
        now = self.clock.now()
        lease = now + timedelta(seconds=self.options.lease_seconds)
        async with transaction(self.sessions) as session:
            claimed = await HlrRepository(session).claim(
                list(self.providers), now, lease, self.options.batch_size
            )
        if not claimed:
            return Recorded(0, 0, 0)
        by_provider: dict[int, list[ClaimedLookup]] = defaultdict(list)
        for lookup in claimed:
            by_provider[lookup.provider_id].append(lookup)
        answered = await asyncio.gather(
            *(self._ask(provider_id, lookups) for provider_id, lookups in by_provider.items())
        )
        answers = {answer.lookup_id: answer for batch in answered for answer in batch}

        async def record() -> Recorded:
            async with transaction(self.sessions) as session:
                return await record_answers(
                    session, self.clock, lease, claimed, answers, self.options.policy
                )

        # The providers answered (and may have charged): keep the answers until the
        # database takes them, rather than asking again when the lease ends.
        return await retry_while_unavailable(record, what="HLR: recording answers")

    async def _ask(self, provider_id: int, lookups: Sequence[ClaimedLookup]) -> list[HlrAnswer]:
        provider = self.providers.get(provider_id)
        queries = [HlrQuery(lookup.id, lookup.msisdn, lookup.provider_ref) for lookup in lookups]
        try:
            if provider is None:
                raise RuntimeError("the provider stopped")
            # Answers must be recorded while the lease holds: give up well before it ends.
            return await asyncio.wait_for(
                provider.lookup(queries), timeout=self.options.lease_seconds / 2
            )
        except Exception as error:
            log.warning("HLR provider %s failed a batch: %s", provider_id, error)
            text = f"{type(error).__name__}: {error}"[:200]
            return [HlrAnswer(q.lookup_id, Outcome.RETRY, error=text) for q in queries]

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            self._wake.clear()  # before looking: a wake-up during the round is kept
            pause = self._idle_wait  # longer while the database is away (below)
            try:
                if time.monotonic() - self._refreshed >= self.options.refresh_interval:
                    await self.refresh_providers()
                recorded = await self.step()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                pause = pause_after_failure(
                    error, backoff, what="HLR round", usual=pause, logger=log
                )
                recorded = Recorded(0, 0, 0)
            if recorded.finished + recorded.pending + recorded.retried == 0:
                await sleep_until_woken(self._wake, pause)
