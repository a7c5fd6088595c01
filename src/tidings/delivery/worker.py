"""The delivery worker: one lane per supplier, a sweeper, and the report sink.

Each lane claims due jobs of its own supplier, so a slow or dead supplier only ever
holds up its own messages. Every step is a short transaction; all state that must survive
a crash (jobs, leases, attempts, receipts) is in the database, none of it in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.config import Settings
from tidings.connectors.base import (
    AnswersEach,
    Connector,
    InboundItem,
    SubmitOutcome,
    SubmitResult,
    SupplierReport,
    TakesInbound,
)
from tidings.connectors.registry import build_connector
from tidings.db.engine import inline_statements, transaction
from tidings.db.outage import (
    Backoff,
    describe,
    is_connection_error,
    pause_after_failure,
    retry_while_unavailable,
)
from tidings.delivery.answers import AnswerRecorder
from tidings.delivery.breaker import LaneBreaker
from tidings.delivery.ratelimit import SharedThroughputLimit
from tidings.delivery.reports import ReportQueue
from tidings.delivery.service import (
    ClaimedBatch,
    RetryPolicy,
    apply_early_receipts,
    claim_batch,
    drain_batch,
    hold_back,
    record_outcomes,
    sweep_expired,
)
from tidings.inbound.service import InboundHook, give_up_parts, receive
from tidings.messages.changes import AppliedChange
from tidings.observability.metrics import Metrics
from tidings.retention.service import HistoryMaintenance
from tidings.routing.cache import PlanCache
from tidings.routing.health import (
    HALF,
    OPEN,
    BreakerPolicy,
    claim_probe,
    ensure_rows,
    record_results,
)
from tidings.routing.models import Supplier
from tidings.routing.plan import Health, RoutingPlan
from tidings.routing.repository import SupplierRepository
from tidings.routing.service import HLR_SUPPLIER_KINDS, VIBER_SUPPLIER_KINDS
from tidings.viber.dispatch import viber_lane_connector
from tidings.wakeups import dispatch_channel, sleep_until_woken, wakeups_of

log = logging.getLogger("tidings.delivery")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_size: int = 500
    poll_interval: float = 0.05
    lease_seconds: float = 60.0
    submit_timeout: float = 30.0
    sweep_interval: float = 5.0
    report_grace_seconds: int = 3600
    # Message history kept (days); older weeks are pruned daily (retention/service.py).
    retention_days: int = 90
    supplier_refresh_interval: float = 5.0
    cache_ttl: float = 2.0  # the routing plan's age at most (failover, breakers)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    gather_interval: float = 0.005  # a woken lane waits this long for more jobs to join

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerOptions:
        return cls(
            batch_size=settings.dispatch_batch_size,
            poll_interval=settings.poll_interval,
            lease_seconds=settings.lease_seconds,
            submit_timeout=settings.submit_timeout,
            sweep_interval=settings.sweep_interval,
            report_grace_seconds=settings.report_grace_seconds,
            retention_days=settings.retention_days,
            supplier_refresh_interval=settings.supplier_refresh_interval,
            cache_ttl=settings.cache_ttl,
        )


class SupplierLane:
    def __init__(
        self,
        supplier: Supplier,
        connector: Connector,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        options: WorkerOptions,
        *,
        metrics: Metrics | None = None,
        plans: PlanCache | None = None,
    ) -> None:
        self.supplier_id = supplier.id
        self.name = supplier.name
        # Failover and the circuit breaker need the routing plan; a lane without one
        # retries its own messages only (the old behaviour, kept for focused tests).
        self.plans = plans
        self.breaker_policy = BreakerPolicy.of(supplier.options or {})
        self.breaker = LaneBreaker(supplier.id, supplier.name, metrics)
        self.connector = connector
        self.sessions = sessions
        self.clock = clock
        self.options = options
        self.metrics = metrics
        # The supplier's throughput limit, shared with its lanes in every other process;
        # none (and no database round trip for it) when it has no limit.
        self.bucket = (
            SharedThroughputLimit(supplier.id, supplier.throughput, sessions, clock)
            if supplier.throughput
            else None
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Woken by the commits that add this supplier's jobs, in any process; stopping
        # wakes it too (tidings/wakeups.py).
        hub = wakeups_of(sessions)
        self._wake = (
            hub.subscribe(dispatch_channel(supplier.id)) if hub is not None else asyncio.Event()
        )
        self._idle_wait = hub.idle_poll if hub is not None else options.poll_interval

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"lane-{self.name}")

    async def stop(self, grace: float = 10.0) -> None:
        """Let the batch in hand finish (so its jobs are not left leased), then stop."""
        if self._task is not None:
            self._stopping.set()
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self.connector.stop()

    async def _run(self) -> None:
        with inline_statements():
            await self._steps()

    async def _steps(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            self._wake.clear()  # before looking: a wake-up during the step is kept
            pause = self._idle_wait  # longer while the database is away (below)
            try:
                worked = await self.step()
                backoff.reset()
            except Exception as error:
                # The database or the connector hiccuped; leases make retrying safe. While
                # the database is away, wait longer each time rather than spin on it.
                pause = pause_after_failure(
                    error, backoff, what=f"lane {self.name}", usual=pause, logger=log
                )
                worked = False
            if not worked:
                await sleep_until_woken(self._wake, pause)
                if not self._stopping.is_set():
                    # Every accepted batch wakes the lane: let the ones committed in the
                    # next moment join this claim rather than each making its own.
                    await asyncio.sleep(self.options.gather_interval)

    async def step(self) -> bool:
        """Claim, submit and record one batch. Returns whether there was anything to do."""
        plan = await self.plans.get() if self.plans is not None else None
        health = Health()
        if plan is not None and self.breaker_policy.enabled:
            assert self.plans is not None
            health = self.breaker.view(plan, self.plans.loaded_at)
            if health.state == OPEN:
                health = await self._probe_when_due(health)
            if health.state == OPEN:
                return await self._drain(plan, health)
        # Half-open: one message at a time until one answer settles the breaker.
        size = self.options.batch_size if health.state != HALF else 1
        limit = size if self.bucket is None else self.bucket.batch_limit(size)
        started = time.perf_counter()
        async with transaction(self.sessions) as session:
            batch = await claim_batch(
                session, self.clock, self.supplier_id, limit, self.options.lease_seconds
            )
        if not batch.to_send and not batch.expired:
            return False
        held_back = False
        waited = 0.0
        outcomes: Sequence[SubmitOutcome] | None = None
        if self.bucket is not None and batch.to_send:
            # Booked after the claim, for exactly what goes: an idle lane books nothing.
            booking = await self.bucket.book(len(batch.to_send))
            # Our own throughput limit, not the work there was, decided this batch's size
            # or when it goes.
            held_back = booking.wait > 0 or (limit < size and len(batch.to_send) >= limit)
            if booking.wait > self.options.lease_seconds / 2:
                # Many processes share a low rate: the wait would outlast the lease, and
                # another worker would take the jobs over. Put them back for later instead.
                await self.bucket.give_back(booking)
                log.warning(
                    "supplier %s: the throughput limit is booked %.1f s ahead",
                    self.name,
                    booking.wait,
                )
                async with transaction(self.sessions) as session:
                    await hold_back(
                        session,
                        self.clock,
                        self.supplier_id,
                        [m.message_id for m in batch.to_send],
                        booking.wait,
                        "held back by the supplier's throughput limit",
                    )
                batch = ClaimedBatch([], batch.attempts, batch.expired)  # expired: as ever
                outcomes = []
            elif booking.wait > 0:
                waited = booking.wait
                await asyncio.sleep(waited)
        if outcomes is None:
            # A connector that tells each answer as it comes gets its `sent` written
            # meanwhile.
            recorder: AnswerRecorder | None = None
            if getattr(self.connector, "reports_each_answer", False) and len(batch.to_send) > 1:
                recorder = AnswerRecorder(
                    batch, lambda part, answers: self._record(part, answers, plan)
                )
            try:
                outcomes = await self._submit(batch, held_back, recorder)
            finally:
                if recorder is not None:
                    await recorder.close()
            if recorder is not None:
                batch, outcomes = recorder.rest(outcomes)
        await self._record(batch, outcomes, plan)
        if self.bucket is not None:
            self.bucket.busy_for(time.perf_counter() - started - waited)
        return True

    async def _record(
        self,
        batch: ClaimedBatch,
        outcomes: Sequence[SubmitOutcome],
        plan: RoutingPlan | None = None,
    ) -> None:
        now = self.clock.now()
        transition = None

        async def record() -> list[AppliedChange]:
            nonlocal transition
            async with transaction(self.sessions) as session:
                applied = await record_outcomes(
                    session,
                    self.clock,
                    self.supplier_id,
                    batch,
                    outcomes,
                    self.options.retry,
                    plan=plan,
                )
                if plan is not None and self.breaker_policy.enabled:
                    failed = [o for o in outcomes if o.result is SubmitResult.RETRY]
                    transition = await record_results(
                        session,
                        self.supplier_id,
                        self.breaker_policy,
                        now,
                        answered=len(outcomes) - len(failed),
                        failed=len(failed),
                        last_error=failed[-1].error if failed else None,
                    )
                return applied

        # The supplier has the batch now: its answers are kept until the database takes
        # them, or the messages would be sent again when the lease ends.
        applied = await retry_while_unavailable(
            record, what=f"lane {self.name}: recording answers", stopping=self._stopping
        )
        if transition is not None:
            probe_at = now + timedelta(seconds=self.breaker_policy.cooldown)
            self.breaker.learned(transition, now, probe_at if transition.after == OPEN else None)
        # Counted after each commit that made it true (a scrape may come in between).
        if self.metrics is not None:
            self.metrics.changes_applied(applied)
        async with transaction(self.sessions) as session:
            early = await apply_early_receipts(session, self.clock, outcomes)
        if self.metrics is not None:
            self.metrics.changes_applied(early)

    async def _probe_when_due(self, health: Health) -> Health:
        """Half-open the breaker once its cool-down is over, if this process wins the probe."""
        now = self.clock.now()
        if health.probe_at is None or health.probe_at > now:
            return health
        async with transaction(self.sessions) as session:
            transition = await claim_probe(session, self.supplier_id, self.breaker_policy, now)
        if transition is None:  # another process probes; wait for the snapshot to tell
            return health
        self.breaker.learned(transition, now, None)
        return Health(HALF, health.success_rate, None, transition.reason)

    async def _drain(self, plan: RoutingPlan, health: Health) -> bool:
        """Out of routing: hand queued messages to their next candidates, untried."""
        async with transaction(self.sessions) as session:
            batch = await claim_batch(
                session,
                self.clock,
                self.supplier_id,
                self.options.batch_size,
                self.options.lease_seconds,
            )
            if not batch.to_send and not batch.expired:
                return False
            until = health.probe_at or self.clock.now()
            applied, moved = await drain_batch(
                session,
                self.clock,
                self.supplier_id,
                batch,
                plan,
                health.reason or "out of routing",
                until,
            )
        if self.metrics is not None:
            self.metrics.changes_applied(applied)
            self.metrics.failed_over(self.supplier_id, moved)
        # Jobs left to wait for the probe are not due again before it: no work done.
        return moved > 0 or bool(applied)

    async def _submit(
        self, batch: ClaimedBatch, held_back: bool, recorder: AnswerRecorder | None = None
    ) -> Sequence[SubmitOutcome]:
        if not batch.to_send:
            return []
        started = time.perf_counter()
        try:
            submitting = (
                self.connector.submit(batch.to_send)
                if recorder is None
                else cast(AnswersEach, self.connector).submit(
                    batch.to_send, answered=recorder.answered
                )
            )
            outcomes = await asyncio.wait_for(submitting, self.options.submit_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the whole batch goes back to be retried
            reason = f"{type(error).__name__}: {error}"[:200]
            log.warning("supplier %s submit failed: %s", self.name, reason)
            if self.metrics is not None:
                self.metrics.submitted(self.supplier_id, time.perf_counter() - started, None)
            return [
                SubmitOutcome(m.message_id, SubmitResult.RETRY, error=reason) for m in batch.to_send
            ]
        if self.metrics is not None:
            self.metrics.submitted(
                self.supplier_id, time.perf_counter() - started, outcomes, held_back=held_back
            )
        return outcomes


class DeliveryWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        options: WorkerOptions,
        *,
        metrics: Metrics | None = None,
        inbound_hooks: Sequence[InboundHook] = (),
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.options = options
        self.metrics = metrics
        self.inbound_hooks = inbound_hooks  # inbound.hooks.after_inbound_stored
        self.lanes: dict[int, SupplierLane] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.reports = ReportQueue(sessions, clock, metrics=metrics)
        self.plans = PlanCache(sessions, clock, ttl=options.cache_ttl)
        self.history = HistoryMaintenance(sessions, clock, options.retention_days)
        # Lanes only run on their own once started; until then (tests) they are stepped by hand.
        self._running = False

    async def start(self) -> None:
        self._running = True
        self.reports.start()
        await self.refresh_suppliers()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.options.sweep_interval, self.sweep), name="sweeper"),
            loop.create_task(
                self._every(self.options.supplier_refresh_interval, self.refresh_suppliers),
                name="supplier-refresh",
            ),
        ]

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for lane in list(self.lanes.values()):
            await lane.stop()
        self.lanes.clear()
        await self.reports.stop()

    async def report(self, supplier_id: int, reports: Sequence[SupplierReport]) -> None:
        """The sink connectors report into: returns once the reports are committed."""
        await self.reports.submit(supplier_id, reports)

    async def inbound(self, supplier_id: int, items: Sequence[InboundItem]) -> None:
        """The sink connectors deliver inbound messages into: returns once committed."""
        async with transaction(self.sessions) as session:
            stored = await receive(
                session, self.clock, supplier_id, items, hooks=self.inbound_hooks
            )
        if self.metrics is not None:
            self.metrics.inbound_stored(supplier_id, stored)

    async def sweep(self) -> None:
        async with transaction(self.sessions) as session:
            applied = await sweep_expired(
                session, self.clock, grace_seconds=self.options.report_grace_seconds
            )
        if self.metrics is not None:
            self.metrics.changes_applied(applied)
        async with transaction(self.sessions) as session:
            overdue = await give_up_parts(session, self.clock, hooks=self.inbound_hooks)
        if self.metrics is not None:
            for supplier_id, stored in overdue.items():
                self.metrics.inbound_stored(supplier_id, stored)
        # Once a day (a row says when it last ran, for every worker): the coming weeks'
        # partitions, and the history past retention.
        await self.history.run_if_due()

    async def refresh_suppliers(self) -> None:
        async with self.sessions() as session:
            suppliers = {
                s.id: s
                for s in await SupplierRepository(session).list(enabled_only=True)
                if s.kind not in HLR_SUPPLIER_KINDS  # HLR providers run in the HLR worker
            }
        async with transaction(self.sessions) as session:
            await ensure_rows(session, sorted(suppliers), self.clock.now())
        if self.metrics is not None:
            plan = await self.plans.get()
            for supplier_id in self.lanes:
                up = self.lanes[supplier_id].breaker.view(plan, self.plans.loaded_at).up
                self.metrics.supplier_routing(supplier_id, up)
        for supplier_id in set(self.lanes) - set(suppliers):
            await self.lanes.pop(supplier_id).stop()
            if self.metrics is not None:
                self.metrics.supplier_removed(supplier_id)
        for supplier_id, supplier in suppliers.items():
            if supplier_id in self.lanes:
                continue
            try:
                connector: Connector = (
                    viber_lane_connector(supplier, self.clock, self.sessions)
                    if supplier.kind in VIBER_SUPPLIER_KINDS
                    else build_connector(supplier, self.clock)
                )
                if isinstance(connector, TakesInbound):
                    connector.attach_inbound(self.inbound)
                await connector.start(self.report)
            except Exception:
                log.exception("supplier %s could not start", supplier.name)
                if self.metrics is not None:
                    self.metrics.supplier_failed_to_start(supplier_id)
                continue
            if self.metrics is not None:
                self.metrics.supplier_started(supplier_id)
            lane = SupplierLane(
                supplier,
                connector,
                self.sessions,
                self.clock,
                self.options,
                metrics=self.metrics,
                plans=self.plans,
            )
            if self.metrics is not None:
                self.metrics.supplier_routing(supplier_id, True)
            if self._running:
                lane.start()
            self.lanes[supplier_id] = lane

    async def _every(self, interval: float, action: object) -> None:
        assert callable(action)
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                name = getattr(action, "__name__", action)
                if is_connection_error(error):  # it runs again next interval
                    log.warning("periodic %s: database unavailable (%s)", name, describe(error))
                else:
                    log.exception("periodic %s failed", name)
