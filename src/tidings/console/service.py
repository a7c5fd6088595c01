"""What the console pages show, assembled from the console repository (no SQL here).

Charts are handed to the browser as `Chart` objects: one x axis of Unix seconds (bucket
starts) and one series per status, ready for uPlot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Client
from tidings.console.repository import (
    ClientLine,
    ConsoleRepository,
    EndpointTrouble,
    Failure,
    QueueDepths,
)
from tidings.db.ids import parse_id
from tidings.delivery.models import DispatchJob, Receipt
from tidings.messages.models import Message
from tidings.messages.status import FINAL_STATUSES, Status
from tidings.optouts.models import OptOut
from tidings.optouts.repository import OptOutRepository
from tidings.routing.margins import MarginRepository, summarize
from tidings.routing.models import Supplier
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

# Series order and colours: the same status is the same colour on every chart.
STATUS_COLOURS = {
    "accepted": "#64748b",
    "queued": "#94a3b8",
    "scheduled": "#a5b4fc",
    "sent": "#2563eb",
    "unknown": "#9333ea",
    "delivered": "#16a34a",
    "undelivered": "#ea580c",
    "expired": "#a16207",
    "rejected": "#dc2626",
    "failed": "#7f1d1d",
    "read": "#0d9488",
    "not_viber_user": "#db2777",
}
# Viber's "read" comes after "delivered" (both final): counting it too would count a read
# message twice, so outcomes count every final status but "read", and it is no failure.
SUCCESSES = frozenset({"delivered", "read"})
FINALS = sorted(s.value for s in FINAL_STATUSES if s.value != "read")
FAILURES = sorted(s.value for s in FINAL_STATUSES if s.value not in SUCCESSES)
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}
OPTOUTS_SHOWN = 50


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    values: list[float]


@dataclass(frozen=True)
class Chart:
    x: list[int]
    series: list[Series]
    unit: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def total(self) -> float:
        return sum(sum(s.values) for s in self.series)


def _chart(
    rows: Iterable[tuple[int, str, int]],
    *,
    start_bucket: int,
    buckets: int,
    bucket_seconds: int,
    per: float,
    unit: str,
) -> Chart:
    """Dense series from sparse (bucket, status, count) rows; counts divided by `per`."""
    counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * buckets)
    for bucket, status, count in rows:
        index = bucket - start_bucket
        if 0 <= index < buckets:
            counts[status][index] += count / per
    order = [s for s in STATUS_COLOURS if s in counts] + sorted(
        s for s in counts if s not in STATUS_COLOURS
    )
    return Chart(
        x=[(start_bucket + i) * bucket_seconds for i in range(buckets)],
        series=[
            Series(s, STATUS_COLOURS.get(s, "#0f766e"), [round(v, 2) for v in counts[s]])
            for s in order
        ],
        unit=unit,
    )


class BucketCache:
    """Traffic counts of time buckets that are over, kept for the life of the process.

    A bucket that ended `settle_seconds` ago no longer changes: status changes are stored
    with the time they happened, and they are stored soon after (a receipt applied late, or
    carrying the supplier's own time, comes within minutes). So the charts query only the
    recent buckets: a refresh of the last day reads the last ten minutes, not the day. A
    change stored with a time older than that is counted from the next start of the process.
    """

    def __init__(self, settle_seconds: float = 600, max_entries: int = 50_000) -> None:
        self.settle_seconds = settle_seconds
        self.max_entries = max_entries
        self._entries: dict[tuple[int, int], list[tuple[str, int]]] = {}

    def get(self, bucket_seconds: int, bucket: int) -> list[tuple[str, int]] | None:
        return self._entries.get((bucket_seconds, bucket))

    def put(
        self, now: datetime, bucket_seconds: int, bucket: int, counts: list[tuple[str, int]]
    ) -> None:
        if (bucket + 1) * bucket_seconds <= now.timestamp() - self.settle_seconds:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[(bucket_seconds, bucket)] = counts


async def traffic_chart(
    repo: ConsoleRepository,
    now: datetime,
    *,
    buckets: int,
    bucket_seconds: int,
    cache: BucketCache | None = None,
) -> Chart:
    """Messages accepted and status changes per minute, in `buckets` buckets up to now."""
    last = int(now.timestamp()) // bucket_seconds
    start_bucket = last - buckets + 1
    rows: list[tuple[int, str, int]] = []
    missing = []
    for bucket in range(start_bucket, last + 1):
        cached = cache.get(bucket_seconds, bucket) if cache else None
        if cached is None:
            missing.append(bucket)
        else:
            rows.extend((bucket, status, count) for status, count in cached)
    if missing:
        since = datetime.fromtimestamp(missing[0] * bucket_seconds, tz=now.tzinfo)
        until = min(
            now + timedelta(seconds=1),
            datetime.fromtimestamp((missing[-1] + 1) * bucket_seconds, tz=now.tzinfo),
        )
        fresh = await repo.accepted_counts(since, until, bucket_seconds)
        fresh += await repo.event_counts(since, until, bucket_seconds)
        by_bucket: dict[int, list[tuple[str, int]]] = {b: [] for b in missing}
        for bucket, status, count in fresh:
            if bucket in by_bucket:
                by_bucket[bucket].append((status, count))
                rows.append((bucket, status, count))
        if cache is not None:
            for bucket, counts in by_bucket.items():
                cache.put(now, bucket_seconds, bucket, counts)
    per = bucket_seconds / 60
    return _chart(
        rows,
        start_bucket=start_bucket,
        buckets=buckets,
        bucket_seconds=bucket_seconds,
        per=per,
        unit="messages per minute" if per == 1 else f"messages per minute ({per:g}-minute average)",
    )


@dataclass(frozen=True)
class RateLine:
    key: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.get(s, 0) for s in FINALS)

    @property
    def delivered(self) -> int:
        return self.counts.get(Status.DELIVERED.value, 0)

    @property
    def rate(self) -> float | None:
        return self.delivered / self.total if self.total else None


Outcomes = list[tuple[int | None, str, str, int]]  # (supplier id, country, status, count)


def delivery_rates(
    outcomes: Outcomes, key: Literal["supplier", "country"], supplier_names: dict[int, str]
) -> list[RateLine]:
    """Final outcomes per supplier or country, busiest first."""
    grouped: dict[str, dict[str, int]] = defaultdict(dict)
    for supplier_id, country, status, count in outcomes:
        if status not in FINALS:
            continue
        if key == "supplier":
            name = (
                "(none)"
                if supplier_id is None
                else supplier_names.get(supplier_id, f"#{supplier_id}")
            )
        else:
            name = country or "??"
        grouped[name][status] = grouped[name].get(status, 0) + count
    lines = [RateLine(k, v) for k, v in grouped.items()]
    return sorted(lines, key=lambda line: (-line.total, line.key))


@dataclass(frozen=True)
class SupplierHealth:
    supplier: Supplier
    counts: dict[str, int]  # status changes in the last hour
    jobs: int
    due: int
    retrying: int
    last_error: str | None
    verdict: str  # ok, idle, trouble, disabled, out (its circuit breaker is open)
    breaker: str = "closed"  # closed, half (probing), open (out of routing)
    breaker_reason: str | None = None

    @property
    def refused(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("rejected", "failed"))


HEALTH_STATUSES = ["sent", *FINALS]


async def supplier_health(
    repo: ConsoleRepository, now: datetime, suppliers: Sequence[Supplier], last_hour: Outcomes
) -> list[SupplierHealth]:
    """Each supplier's last hour (`last_hour`: outcomes of HEALTH_STATUSES) and queue."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for supplier_id, _, status, count in last_hour:
        if supplier_id is not None:
            counts[supplier_id][status] = counts[supplier_id].get(status, 0) + count
    queues = await repo.supplier_queues(now)
    breakers = await repo.breakers()
    health = []
    for supplier in suppliers:
        seen = counts.get(supplier.id, {})
        queue = queues.get(supplier.id)
        refused = seen.get("rejected", 0) + seen.get("failed", 0)
        handled = seen.get("sent", 0) + refused
        breaker, breaker_reason = breakers.get(supplier.id, ("closed", None))
        if not supplier.enabled:
            verdict = "disabled"
        elif breaker == "open":
            verdict = "out"
        elif (queue is not None and queue.retrying) or (handled and refused / handled > 0.2):
            verdict = "trouble"
        elif not seen and queue is None:
            verdict = "idle"
        else:
            verdict = "ok"
        health.append(
            SupplierHealth(
                supplier=supplier,
                counts=seen,
                jobs=queue.jobs if queue else 0,
                due=queue.due if queue else 0,
                retrying=queue.retrying if queue else 0,
                last_error=queue.last_error if queue else None,
                verdict=verdict,
                breaker=breaker,
                breaker_reason=breaker_reason,
            )
        )
    return health


@dataclass(frozen=True)
class Overview:
    now: datetime
    window: str
    hour: Chart
    day: Chart
    queues: QueueDepths
    suppliers: list[SupplierHealth]
    by_supplier: list[RateLine]
    by_country: list[RateLine]
    failures: list[Failure]
    endpoints: list[EndpointTrouble]


async def overview(
    session: AsyncSession, now: datetime, window: str, cache: BucketCache | None = None
) -> Overview:
    repo = ConsoleRepository(session)
    suppliers = await repo.suppliers()
    names = {s.id: s.name for s in suppliers}
    window = window if window in WINDOWS else "1h"
    day_ago = now - timedelta(hours=24)
    last_hour = await repo.outcomes(now - WINDOWS["1h"], HEALTH_STATUSES)
    outcomes = last_hour if window == "1h" else await repo.outcomes(now - WINDOWS[window], FINALS)
    return Overview(
        now=now,
        window=window,
        hour=await traffic_chart(repo, now, buckets=60, bucket_seconds=60, cache=cache),
        day=await traffic_chart(repo, now, buckets=144, bucket_seconds=600, cache=cache),
        queues=await repo.queue_depths(now),
        suppliers=await supplier_health(repo, now, suppliers, last_hour),
        by_supplier=delivery_rates(outcomes, "supplier", names),
        by_country=delivery_rates(outcomes, "country", names),
        failures=await repo.latest_failures(day_ago, FAILURES, 20),
        endpoints=await repo.failing_endpoints(day_ago, 20),
    )


async def live(
    session: AsyncSession, now: datetime, cache: BucketCache | None = None
) -> dict[str, Any]:
    """The numbers the overview refreshes every few seconds."""
    repo = ConsoleRepository(session)
    hour = await traffic_chart(repo, now, buckets=60, bucket_seconds=60, cache=cache)
    return {
        "now": now.isoformat(),
        "hour": hour.to_json(),
        "queues": asdict(await repo.queue_depths(now)),
    }


# Clients.


async def client_list(session: AsyncSession, now: datetime) -> list[ClientLine]:
    return await ConsoleRepository(session).clients(now - timedelta(hours=24))


async def optout_counts(session: AsyncSession) -> dict[int, int]:
    """Numbers on each client's opt-out list (one GROUP BY over its index)."""
    return await OptOutRepository(session).counts()


@dataclass(frozen=True)
class ClientPage:
    client: Client
    traffic: Chart
    totals: dict[str, int]
    messages: Sequence[Message]
    webhooks: list[tuple[WebhookDelivery, list[WebhookAttempt]]]
    optout_count: int = 0
    optouts: Sequence[OptOut] = ()  # the first OPTOUTS_SHOWN, in msisdn order


async def client_page(session: AsyncSession, now: datetime, client_id: int) -> ClientPage | None:
    repo = ConsoleRepository(session)
    optouts = OptOutRepository(session)
    client = await repo.client(client_id)
    if client is None:
        return None
    hours = 24
    last = int(now.timestamp()) // 3600
    start_bucket = last - hours + 1
    since = datetime.fromtimestamp(start_bucket * 3600, tz=now.tzinfo)
    rows = await repo.accepted_counts(
        since, now + timedelta(seconds=1), 3600, client_id=client_id, by_status=True
    )
    totals: dict[str, int] = defaultdict(int)
    for _, status, count in rows:
        totals[status] += count
    chart = _chart(
        rows,
        start_bucket=start_bucket,
        buckets=hours,
        bucket_seconds=3600,
        per=1,
        unit="messages accepted per hour, by status now",
    )
    return ClientPage(
        client=client,
        traffic=chart,
        totals=dict(totals),
        messages=await repo.client_messages(client_id, 50),
        webhooks=await repo.deliveries_of_client(client_id, 30),
        optout_count=await optouts.count(client_id),
        optouts=await optouts.page(client_id, after=None, limit=OPTOUTS_SHOWN),
    )


# Messages.


@dataclass(frozen=True)
class Step:
    status: str
    at: datetime
    detail: str | None
    after_seconds: float | None  # since the previous step


@dataclass(frozen=True)
class MessageHistory:
    message: Message
    client_name: str
    supplier_name: str | None
    steps: list[Step]
    receipts: Sequence[Receipt]
    job: DispatchJob | None
    webhooks: list[tuple[WebhookDelivery, list[WebhookAttempt]]]
    related: list[MessageHistory] = field(default_factory=list)
    relation: str | None = None  # how a related message is related to the one shown


def parse_query(query: str) -> tuple[int | None, str | None, str | None]:
    """A search box's text as (id, reference, phone): every reading that could match."""
    text = query.strip()
    if not text:
        return None, None, None
    digits = "".join(c for c in text if c.isascii() and c.isdigit())
    phone_like = bool(digits) and all(c in "0123456789+-() ." for c in text)
    message_id = parse_id(text)
    msisdn = digits if phone_like and 7 <= len(digits) <= 15 else None
    return message_id, text[:64], msisdn


async def search(session: AsyncSession, query: str) -> list[Message]:
    message_id, reference, msisdn = parse_query(query)
    if message_id is None and reference is None and msisdn is None:
        return []
    return await ConsoleRepository(session).find_messages(
        message_id=message_id, reference=reference, msisdn=msisdn, limit=50
    )


async def _history(
    repo: ConsoleRepository, message: Message, relation: str | None = None
) -> MessageHistory:
    clients, suppliers = await repo.names(
        [message.client_id], [message.supplier_id] if message.supplier_id else []
    )
    steps = [Step("accepted", message.time_in, None, None)]
    for event in await repo.events(message):
        after = (event.at - steps[-1].at).total_seconds()
        steps.append(Step(event.status, event.at, event.detail, after))
    return MessageHistory(
        message=message,
        client_name=clients.get(message.client_id, f"#{message.client_id}"),
        supplier_name=suppliers.get(message.supplier_id) if message.supplier_id else None,
        steps=steps,
        receipts=await repo.receipts(message.id),
        job=await repo.dispatch_job(message.id),
        webhooks=await repo.deliveries_of_message(message.id),
        relation=relation,
    )


async def message_history(session: AsyncSession, message_id: int) -> MessageHistory | None:
    """One message's whole story, and that of the messages linked to it (fallback legs)."""
    repo = ConsoleRepository(session)
    message = await repo.message(message_id)
    if message is None:
        return None
    history = await _history(repo, message)
    for relative, is_child in await repo.related(message):
        relation = (
            f"stands in for message {message.id} (its fallback)"
            if is_child
            else f"is the one message {message.id} stands in for"
        )
        history.related.append(await _history(repo, relative, relation))
    return history


MARGIN_PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}


@dataclass(frozen=True)
class Margins:
    period: str
    since: datetime
    until: datetime
    by_client: list[dict[str, Any]]
    by_supplier: list[dict[str, Any]]
    by_country: list[dict[str, Any]]


async def margins(session: AsyncSession, now: datetime, period: str) -> Margins:
    """Margin per client, supplier and country over the last day, week or month (the same
    numbers as `tidings report margins`, docs/routing.md)."""
    period = period if period in MARGIN_PERIODS else "day"
    since = now - MARGIN_PERIODS[period]
    rows = await MarginRepository(session).totals(since, now)

    def ranked(by: str) -> list[dict[str, Any]]:
        return sorted(summarize(rows, by), key=lambda r: (-r["margin"], str(r[by])))

    return Margins(period, since, now, ranked("client"), ranked("supplier"), ranked("country"))
