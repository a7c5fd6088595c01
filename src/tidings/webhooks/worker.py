"""The webhook worker: claims due deliveries, POSTs them, records every attempt.

All state that must survive a crash is in the database: a delivery is leased while its
request is in flight, and the attempt and its outcome are written in one transaction
afterwards. A worker killed at any point loses nothing: the lease runs out and the delivery
is sent again. Only a request that was in flight can arrive twice (at-least-once); it
carries the same webhook-id both times, so receivers can drop the repeat.

Running (`start`), the worker keeps a pipeline full: it claims while it has room, sends
each delivery as soon as its endpoint has a free slot, and records results in small
batches. One endpoint never gets more than `per_host` requests at a time, and its clients
stop being claimed while it is saturated, so a slow endpoint only ever delays its own
reports. Stepped by hand (`step`, for tests), it claims, sends and records one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings import __version__
from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import inline_statements, one_statement, transaction
from tidings.db.outage import Backoff, describe, is_connection_error, pause_after_failure
from tidings.errors import ConfigurationError
from tidings.observability.metrics import Metrics
from tidings.wakeups import WEBHOOKS, sleep_until_woken, wakeups_of
from tidings.webhooks.formats import StoredDelivery
from tidings.webhooks.repository import PENDING, ClaimedDelivery, Outcome, WebhookRepository
from tidings.webhooks.service import DEFAULT_FORMAT, FORMATS, Response, outcome_of
from tidings.webhooks.signing import signature_headers

log = logging.getLogger("tidings.webhooks")

# Read from a response: enough for the log (500 chars) and a JSON:API error document.
MAX_RESPONSE_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    batch_size: int = 200
    poll_interval: float = 0.05
    # Must outlast a request plus its wait for a slot; a delivery whose lease runs short
    # before it gets a slot is released unsent rather than risk a second sender.
    lease_seconds: float = 60.0
    timeout: float = 10.0  # the whole request, connect to last byte
    connect_timeout: float = 5.0
    concurrency: int = 200  # requests in flight at once, over all endpoints
    per_host: int = 64  # requests in flight to one endpoint (scheme://host:port)
    record_interval: float = 0.02  # how long results may wait to be written together
    # How long a woken claim loop waits for more work to come due before it claims: every
    # commit that makes a status change wakes it, and one claim per commit (hundreds a
    # second under load) would cost more than the requests it sends.
    gather_interval: float = 0.01

    def __post_init__(self) -> None:
        if self.lease_seconds <= 2 * self.timeout:
            raise ConfigurationError(
                f"the webhook lease ({self.lease_seconds:g} s) must be more than twice the "
                f"request timeout ({self.timeout:g} s)"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookOptions:
        return cls(
            batch_size=settings.webhook_batch_size,
            poll_interval=settings.webhook_poll_interval,
            lease_seconds=settings.webhook_lease_seconds,
            timeout=settings.webhook_timeout,
            connect_timeout=settings.webhook_connect_timeout,
            concurrency=settings.webhook_concurrency,
            per_host=settings.webhook_per_host,
        )


def endpoint_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class WebhookWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        options: WebhookOptions,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.options = options
        self.metrics = metrics
        self._http: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(options.concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        # Claimed and not yet recorded: delivery id -> (endpoint, client id).
        self._held: dict[int, tuple[str, int]] = {}
        self._held_per_host: Counter[str] = Counter()
        self._results: list[Outcome] = []
        self._results_ready = asyncio.Event()
        # Set when a result frees room, and by the commits that add deliveries in any
        # process (tidings/wakeups.py); without a hub the claim loop polls.
        hub = wakeups_of(sessions)
        self._room = hub.subscribe(WEBHOOKS) if hub is not None else asyncio.Event()
        self._idle_wait = hub.idle_poll if hub is not None else options.poll_interval
        self._sending: set[asyncio.Task[None]] = set()
        self._claims: asyncio.Task[None] | None = None
        self._records: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # --- Life cycle ---------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        # aiohttp, not httpx: httpx's pool checks every pooled connection on each request,
        # so its cost per POST grows with the requests in flight (0.9 ms at 4, 13 ms at 128
        # on the development machine); aiohttp's stays near 0.1 ms (docs/webhooks.md).
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.options.concurrency,
                    limit_per_host=self.options.per_host,
                    keepalive_timeout=30,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=self.options.timeout, sock_connect=self.options.connect_timeout
                ),
                headers={"user-agent": f"Tidings-Webhooks/{__version__}"},
                auto_decompress=False,  # the body is only logged, 500 characters of it
                skip_auto_headers=("accept-encoding",),
            )
        return self._http

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._claims = loop.create_task(self._claim_loop(), name="webhook-claims")
        self._records = loop.create_task(self._record_loop(), name="webhook-records")

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let requests in flight finish and be recorded, then close."""
        self._stopping.set()
        self._room.set()
        wait = self.options.timeout + 1 if grace is None else grace
        if self._claims is not None:
            await _finish(self._claims, wait)  # no new requests from here on
            self._claims = None
        if self._sending:
            _, late = await asyncio.wait(set(self._sending), timeout=wait)
            for task in late:  # released unanswered: sent again later (at-least-once)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._results_ready.set()
        if self._records is not None:
            await _finish(self._records, wait)
            self._records = None
        with contextlib.suppress(Exception):
            await self._flush()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- One batch, by hand -------------------------------------------------------------

    async def step(self) -> int:
        """Claim, send and record one batch; returns how many deliveries it handled."""
        claimed = await self._claim(self.options.batch_size)
        if not claimed:
            return 0
        await asyncio.gather(*(self._deliver(d) for d in claimed))
        await self._flush()
        return len(claimed)

    # --- The running pipeline -----------------------------------------------------------

    async def _claim_loop(self) -> None:
        with inline_statements():
            await self._claim_rounds()

    async def _claim_rounds(self) -> None:
        # Claimed but not yet recorded, at most: every slot busy plus one batch waiting.
        capacity = self.options.concurrency + self.options.batch_size
        backoff = Backoff()
        while not self._stopping.is_set():
            self._room.clear()  # before looking: a wake-up during the claim is kept
            wanted = min(capacity - len(self._held), self.options.batch_size)
            claimed: list[ClaimedDelivery] = []
            if wanted > 0:
                try:
                    claimed = await self._claim(wanted)
                    backoff.reset()
                except Exception as error:
                    # Nothing was leased, so just try again, a little later each time (the
                    # database may be away for a while).
                    pause = pause_after_failure(
                        error,
                        backoff,
                        what="claiming webhook deliveries",
                        usual=backoff.next_delay(),
                        logger=log,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), pause)
                    continue
            for delivery in claimed:
                task = asyncio.get_running_loop().create_task(self._deliver(delivery))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            if wanted <= 0 or len(claimed) < wanted:
                # No room, or nothing more is due: wait for a recorded result, new work or
                # the next look.
                await sleep_until_woken(self._room, self._idle_wait)
                if not self._stopping.is_set():
                    await asyncio.sleep(self.options.gather_interval)

    async def _record_loop(self) -> None:
        with inline_statements():
            await self._record_rounds()

    async def _record_rounds(self) -> None:
        backoff = Backoff()
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            if not self._stopping.is_set():
                # Let results that finish together share one transaction.
                await asyncio.sleep(self.options.record_interval)
            try:
                await self._flush()
                backoff.reset()
            except Exception as error:
                # Kept for the next round; if the database stays away the leases run out
                # and the deliveries are sent again (at-least-once).
                pause = backoff.next_delay()
                if is_connection_error(error):
                    log.warning(
                        "webhooks: recording attempts waits for the database (%s); "
                        "retrying in %.1f s",
                        describe(error),
                        pause,
                    )
                else:
                    log.exception("recording webhook attempts failed")
                await asyncio.sleep(pause)
                self._results_ready.set()
            if self._stopping.is_set() and not self._sending and not self._results:
                return

    # --- Claim, send, record ------------------------------------------------------------

    def _saturated_clients(self) -> set[int]:
        full = {h for h, n in self._held_per_host.items() if n >= self._host_budget()}
        return {client for host, client in self._held.values() if host in full}

    def _host_budget(self) -> int:
        # How many deliveries of one endpoint may be claimed at once: as many rounds of its
        # `per_host` requests as surely end within a lease even if each one times out, so
        # a fast endpoint's pipe stays full and a slow one's waiting reports never outlive
        # their leases (the lease guard in `_deliver` covers the rest).
        rounds = max(1, int(self.options.lease_seconds // self.options.timeout) - 1)
        return rounds * self.options.per_host

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.options.lease_seconds)
        budget = self._host_budget()
        # Whether every due delivery would be leased: no endpoint holds so many that this
        # claim could take it to its budget (so none is saturated either). Then the look and
        # the lease are one statement; otherwise the candidates are read first and chosen
        # per endpoint.
        takes_all = max(self._held_per_host.values(), default=0) + limit <= budget
        async with (one_statement if takes_all else transaction)(self.sessions) as session:
            repo = WebhookRepository(session)
            if takes_all:
                claimed = await repo.claim(now, limit, lease_until)
            else:
                candidates = await repo.candidates(now, limit, self._saturated_clients())
                taking: Counter[str] = Counter()
                chosen: list[int] = []
                for candidate in candidates:
                    host = endpoint_of(candidate.url)
                    if self._held_per_host[host] + taking[host] >= budget:
                        continue  # left unleased: the endpoint has enough in hand already
                    taking[host] += 1
                    chosen.append(candidate.id)
                claimed = await repo.lease(chosen, now, lease_until)
        for delivery in claimed:
            host = endpoint_of(delivery.url)
            self._held[delivery.id] = (host, delivery.client_id)
            self._held_per_host[host] += 1
        return claimed

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        host = endpoint_of(delivery.url)
        gate = self._host_slots.setdefault(host, asyncio.Semaphore(self.options.per_host))
        response: Response | None = None
        unsent = "stopped before an answer came"
        try:
            async with gate, self._slots:
                # The request must end before the lease does, or a second worker could send
                # it at the same time; if waiting for a slot ate the margin, release it.
                remaining = (delivery.lease - self.clock.now()).total_seconds()
                if remaining > self.options.timeout:
                    response = await self._send(delivery)
                else:
                    unsent = "lease ran short before a slot came free"
        finally:
            self._results.append(outcome_of(delivery, response, self.clock.now(), unsent))
            self._results_ready.set()

    async def _send(self, delivery: ClaimedDelivery) -> Response:
        fmt = FORMATS.get(delivery.format, FORMATS[DEFAULT_FORMAT])
        outgoing = fmt.request(
            StoredDelivery(
                id=delivery.id,
                url=delivery.url,
                content_type=delivery.content_type,
                body=delivery.body,
                login=delivery.login,
                password=delivery.password,
            )
        )
        at = self.clock.now()
        headers = signature_headers(delivery.secret, delivery.webhook_id, at, outgoing.body)
        if outgoing.content_type:
            headers["content-type"] = outgoing.content_type
        started = time.monotonic()
        status: int | None = None
        received = bytearray()
        error: str | None = None
        try:
            # The client's timeout caps the whole exchange, so an endpoint that trickles its
            # answer can't hold a slot for longer than `timeout`; this one also covers the
            # wait for a pooled connection.
            async with asyncio.timeout(self.options.timeout):
                async with self._client().post(
                    outgoing.url, data=outgoing.body, headers=headers, allow_redirects=False
                ) as answer:
                    status = answer.status
                    while len(received) < MAX_RESPONSE_BYTES:
                        chunk = await answer.content.read(MAX_RESPONSE_BYTES - len(received))
                        if not chunk:
                            break
                        received += chunk
        except TimeoutError:
            error = f"timed out after {self.options.timeout:g} s"
        except Exception as failure:  # refused, reset, bad URL…: a failed attempt like a 5xx
            error = f"{type(failure).__name__}: {failure}".rstrip(": ")
        return Response(
            at=at,
            duration_ms=round((time.monotonic() - started) * 1000),
            status_code=None if error else status,
            body=bytes(received),
            error=error,
        )

    async def _flush(self) -> None:
        """Write every result gathered so far in one transaction, then free their places."""
        if not self._results:
            return
        batch, self._results = self._results, []
        try:
            await self._record(batch)
        except BaseException:
            self._results = batch + self._results
            raise
        retries = [o.next_attempt_at for o in batch if o.state == PENDING]
        if retries:
            # Wake for the earliest retry, rather than at the next idle look.
            delay = (min(retries) - self.clock.now()).total_seconds()
            if delay < self._idle_wait:
                asyncio.get_running_loop().call_later(max(0.0, delay), self._room.set)
        for outcome in batch:
            held = self._held.pop(outcome.delivery_id, None)
            if self.metrics is not None:  # recorded: the attempt is committed
                self.metrics.webhook_recorded(None if held is None else held[1], outcome)
            if held is not None:
                host = held[0]
                self._held_per_host[host] -= 1
                if self._held_per_host[host] <= 0:
                    del self._held_per_host[host]
                    # Nobody holds or waits on the endpoint's gate any more.
                    self._host_slots.pop(host, None)
        self._room.set()

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        unit = one_statement if WebhookRepository.record_is_one_statement(outcomes) else transaction
        async with unit(self.sessions) as session:
            await WebhookRepository(session).record(outcomes)


async def _finish(task: asyncio.Task[None], wait: float) -> None:
    """Give a loop `wait` seconds to end on its own, then cancel it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), wait)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
