"""The process's Prometheus metrics: one `Metrics` object, its own registry, no globals.

The app factory (and `tidings worker`) builds one and hands it to what records: the accept
queue, the report queues, the delivery lanes and the webhook worker. Code built without one
(tests, the admin CLI) records nothing. Everything is recorded after the transaction that
made it true has committed, so a rolled-back round counts nothing.

Per event the cost is a dict look-up and an increment: label children are cached here (the
client's own `labels()` validates and locks on every call), and a batch is summed before it
is added. Queue depths are not events; `QueueDepths` counts them when scraped.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings import __version__
from tidings.clock import Clock
from tidings.config import Settings
from tidings.connectors.base import SubmitOutcome, SubmitResult, SupplierReport
from tidings.db.engine import create_sessionmaker
from tidings.exports.repository import create_reader_engine
from tidings.messages.changes import AppliedChange
from tidings.messages.status import FINAL_STATUSES, Status
from tidings.observability.depths import QueueDepths
from tidings.observability.histogram import BatchHistogram
from tidings.observability.optouts import OptOutCounts
from tidings.webhooks.repository import DELIVERED, FAILED, Outcome

if TYPE_CHECKING:
    from tidings.messages.acceptance import PreparedSms

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MESSAGE_LABELS = ("client_id", "supplier_id", "country", "channel")
SUPPLIER_STATES = ("up", "down", "throttled")

# A connector's submit call: a local simulator answers in microseconds, an HTTP or SMPP
# supplier in tens of milliseconds, a struggling one runs into the 30 s timeout.
SUBMIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Accepted to final: seconds for a fast carrier, hours for a phone that is off, up to the
# validity (72 h by default) plus the report grace.
FINAL_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 72 * 3600, 7 * 86400)

M = TypeVar("M", Counter, Histogram, Enum, Gauge)


class InboundCount(Protocol):
    """What the inbound counter needs of a stored inbound message (inbound.service)."""

    @property
    def client_id(self) -> int | None: ...
    @property
    def number(self) -> str: ...
    @property
    def duplicate(self) -> bool: ...


class _Children(Generic[M]):
    """A metric's label children, looked up by raw values (ids need no str() per event)."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[object, ...], M] = {}

    def __call__(self, *values: object) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(
                *("" if v is None else str(v) for v in values)
            )
        return child

    def remove(self, *values: object) -> None:
        if self._children.pop(values, None) is not None:
            self.metric.remove(*("" if v is None else str(v) for v in values))


class Metrics:
    def __init__(
        self,
        depths: QueueDepths | None = None,
        *,
        engine: AsyncEngine | None = None,
        optouts: OptOutCounts | None = None,
    ) -> None:
        self.engine = engine  # the depths' own engine, when they have one
        self.registry = CollectorRegistry()
        registry = self.registry
        Info("tidings_build", "The running Tidings version.", registry=registry).info(
            {"version": __version__}
        )
        self.accepted = _Children(
            Counter(
                "tidings_messages_accepted",
                "Messages stored at acceptance (API and SMPP).",
                MESSAGE_LABELS,
                registry=registry,
            )
        )
        self.sent = _Children(
            Counter(
                "tidings_messages_sent",
                "Messages a supplier took (status sent).",
                MESSAGE_LABELS,
                registry=registry,
            )
        )
        self.final = _Children(
            Counter(
                "tidings_messages_final",
                "Messages that reached a final status, by that status.",
                (*MESSAGE_LABELS, "status"),
                registry=registry,
            )
        )
        # Observed a round of changes at a time (hundreds): see histogram.py.
        self.final_seconds = BatchHistogram(
            "tidings_message_accept_to_final_seconds",
            "Time from acceptance to the final status.",
            ("supplier_id", "channel", "status"),
            FINAL_BUCKETS,
        )
        registry.register(self.final_seconds)
        self.submit_seconds = _Children(
            Histogram(
                "tidings_supplier_submit_seconds",
                "Duration of one connector submit call (a batch).",
                ("supplier_id",),
                buckets=SUBMIT_BUCKETS,
                registry=registry,
            )
        )
        self.supplier_state = _Children(
            Enum(
                "tidings_supplier_state",
                "A supplier connector's state, as its last submit showed it.",
                ("supplier_id",),
                states=list(SUPPLIER_STATES),
                registry=registry,
            )
        )
        self.supplier_up = _Children(
            Gauge(
                "tidings_supplier_up",
                "1 while a supplier is in routing, 0 while its circuit breaker has it out.",
                ("supplier_id",),
                registry=registry,
            )
        )
        self.breaker_transitions = _Children(
            Counter(
                "tidings_supplier_breaker_transitions",
                "Circuit breaker state changes this process made, by the new state.",
                ("supplier_id", "state"),
                registry=registry,
            )
        )
        self.failovers = _Children(
            Counter(
                "tidings_supplier_failovers",
                "Messages handed from a supplier to the next candidate.",
                ("supplier_id",),
                registry=registry,
            )
        )
        self.supplier_errors = _Children(
            Counter(
                "tidings_supplier_errors",
                "Supplier connector errors: start, submit (whole batch), temporary, rejected.",
                ("supplier_id", "kind"),
                registry=registry,
            )
        )
        self.dlr_received = _Children(
            Counter(
                "tidings_dlr_received",
                "Delivery reports stored, from /api/dlr and from connectors.",
                ("supplier_id", "status"),
                registry=registry,
            )
        )
        self.webhook_attempts = _Children(
            Counter(
                "tidings_webhook_attempts",
                "Webhook deliveries recorded, by outcome: delivered, retry, failed, unsent.",
                ("client_id", "outcome"),
                registry=registry,
            )
        )
        self.inbound_received = _Children(
            Counter(
                "tidings_inbound_messages",
                "Inbound messages (MO) stored, by supplier, client ('unrouted' when no number "
                "matched) and the number they were sent to; repeats of one are not counted.",
                ("supplier_id", "client_id", "number"),
                registry=registry,
            )
        )
        self.smpp_bind_failures = Counter(
            "tidings_smpp_bind_failures",
            "Binds to the SMPP server refused (wrong credentials, blocked client).",
            registry=registry,
        )
        self.optout_refusals = _Children(
            Counter(
                "tidings_optout_refusals",
                "Messages refused because their number opted out of the client's messages.",
                ("client_id", "channel"),
                registry=registry,
            )
        )
        self.depths = depths
        if depths is not None:
            registry.register(depths)
        self.optouts = optouts
        if optouts is not None:
            registry.register(optouts)

    # --- Messages -------------------------------------------------------------------------

    def messages_accepted(self, prepared: PreparedSms, channel: str) -> None:
        self.count_accepted(
            prepared.caller.client_id,
            channel,
            ((item.supplier_id, item.destination.iso) for item in prepared.quote.items),
        )

    def count_accepted(
        self, client_id: int, channel: str, destinations: Iterable[tuple[int | None, str]]
    ) -> None:
        """Messages of one client stored together: (supplier id, country) of each."""
        for (supplier_id, country), count in Tally(destinations).items():
            self.accepted(client_id, supplier_id, country, channel).inc(count)

    def optout_refused(self, client_id: int, channel: str, count: int) -> None:
        if count:
            self.optout_refusals(client_id, channel).inc(count)

    def changes_applied(self, applied: Iterable[AppliedChange]) -> None:
        # Each ORM attribute read is a descriptor call: every one is read once. A Status goes
        # into label keys as it is (a StrEnum: its str() is its value).
        sent: Tally[tuple[object, ...]] = Tally()
        final: Tally[tuple[object, ...]] = Tally()
        waits: dict[tuple[object, ...], list[float]] = defaultdict(list)
        for item in applied:
            change = item.change
            status = change.status
            if status is Status.SENT:
                message = item.message
                sent[
                    (message.client_id, message.supplier_id, message.country, message.channel)
                ] += 1
            elif status in FINAL_STATUSES:
                message = item.message
                supplier_id, channel = message.supplier_id, message.channel
                final[(message.client_id, supplier_id, message.country, channel, status)] += 1
                waits[(supplier_id, channel, status)].append(
                    (change.at - message.time_in).total_seconds()
                )
        for key, count in sent.items():
            self.sent(*key).inc(count)
        for key, count in final.items():
            self.final(*key).inc(count)
        for key, seconds in waits.items():
            self.final_seconds.observe_many(key, seconds)

    # --- Suppliers ------------------------------------------------------------------------

    def supplier_started(self, supplier_id: int) -> None:
        self.supplier_state(supplier_id).state("up")

    def supplier_failed_to_start(self, supplier_id: int) -> None:
        self.supplier_state(supplier_id).state("down")
        self.supplier_errors(supplier_id, "start").inc()

    def supplier_removed(self, supplier_id: int) -> None:
        self.supplier_state.remove(supplier_id)
        self.supplier_up.remove(supplier_id)

    def supplier_routing(self, supplier_id: int, up: bool) -> None:
        """Whether the supplier is in routing, as this process last saw its breaker."""
        self.supplier_up(supplier_id).set(1 if up else 0)

    def breaker_changed(self, supplier_id: int, state: str) -> None:
        self.breaker_transitions(supplier_id, state).inc()
        self.supplier_routing(supplier_id, state != "open")

    def failed_over(self, supplier_id: int, count: int) -> None:
        if count:
            self.failovers(supplier_id).inc(count)

    def submitted(
        self,
        supplier_id: int,
        seconds: float,
        outcomes: Sequence[SubmitOutcome] | None,
        *,
        held_back: bool = False,
    ) -> None:
        """One submit call: `outcomes` None when it raised or timed out (the whole batch).

        The state: down when nothing got through (the call failed, or every message came
        back to retry with no hint of when), throttled when the supplier asked us to wait
        (a retry-after) or our own throughput limit held the batch back, else up.
        """
        self.submit_seconds(supplier_id).observe(seconds)
        if outcomes is None:
            self.supplier_errors(supplier_id, "submit").inc()
            self.supplier_state(supplier_id).state("down")
            return
        retries = rejected = asked_to_wait = 0
        for outcome in outcomes:
            if outcome.result is SubmitResult.RETRY:
                retries += 1
                if outcome.retry_after is not None:
                    asked_to_wait += 1
            elif outcome.result is SubmitResult.REJECTED:
                rejected += 1
        if retries:
            self.supplier_errors(supplier_id, "temporary").inc(retries)
        if rejected:
            self.supplier_errors(supplier_id, "rejected").inc(rejected)
        if asked_to_wait or held_back:
            state = "throttled"
        elif outcomes and retries == len(outcomes):
            state = "down"
        else:
            state = "up"
        self.supplier_state(supplier_id).state(state)

    # --- Reports and webhooks -------------------------------------------------------------

    def reports_received(self, supplier_id: int, reports: Iterable[SupplierReport]) -> None:
        for status, count in Tally(report.status.value for report in reports).items():
            self.dlr_received(supplier_id, status).inc(count)

    def inbound_stored(
        self, supplier_id: int | None, stored: Iterable[InboundCount | None]
    ) -> None:
        """After the commit that stored them: the new inbound messages (not the repeats)."""
        supplier = "" if supplier_id is None else supplier_id
        counts = Tally(
            (m.client_id if m.client_id is not None else "unrouted", m.number)
            for m in stored
            if m is not None and not m.duplicate
        )
        for (client, number), count in counts.items():
            self.inbound_received(supplier, client, number).inc(count)

    def smpp_bind_failed(self) -> None:
        self.smpp_bind_failures.inc()

    def webhook_recorded(self, client_id: int | None, outcome: Outcome) -> None:
        self.webhook_attempts(client_id, webhook_outcome(outcome)).inc()

    # --- Exposition -----------------------------------------------------------------------

    async def refresh(self) -> None:
        """Bring the queue depths up to date (at most once a second); call before `render`."""
        if self.depths is not None:
            await self.depths.refresh()
        if self.optouts is not None:
            await self.optouts.refresh()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()


def webhook_outcome(outcome: Outcome) -> str:
    if outcome.attempt is None:
        return "unsent"  # released before a request went out (shutdown, lease ran short)
    if outcome.state == DELIVERED:
        return "delivered"
    if outcome.state == FAILED:
        return "failed"  # the last attempt of the schedule failed: given up
    return "retry"


def build_metrics(settings: Settings, clock: Clock) -> Metrics | None:
    """The process's metrics; None when off. `close()` it at the end.

    Queue depths are counted on an engine of their own: on SQLite a read-only connection
    beside the one writer connection (a WAL snapshot: the counts never wait for, or hold
    up, the writes), on PostgreSQL a one-connection pool apart from the request pool.
    """
    if not settings.metrics:
        return None
    engine = create_reader_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    return Metrics(QueueDepths(sessions, clock), engine=engine, optouts=OptOutCounts(sessions))
