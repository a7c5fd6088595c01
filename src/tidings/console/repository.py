"""The console's SQL: bounded, indexed read queries for the operator pages.

Every aggregate is bounded by a time window on an indexed column, so a page costs what the
window holds, not what the database holds:
- status changes per time bucket: the hand-over and final statuses by the message rows'
  `time_sent` and `time_dr` (partial indexes), the rest by `message_events (at, status)`;
- accepted messages per bucket, per client: `messages (client_id, time_in, id)`, walked
  once per client (the clients table is small; the join makes both engines use the index);
- queues: the dispatch queue (`messages.due_at`, a partial index; read through the view
  `dispatch_jobs`) and pending `webhook_deliveries` hold only outstanding work;
- search: the primary key, `messages (client_id, reference)` per client, `messages (msisdn)`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    event,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import aliased
from sqlalchemy.pool import NullPool

from tidings.accounts.models import Client
from tidings.config import normalize_database_url
from tidings.delivery.models import DispatchJob, Receipt
from tidings.exports.models import BUILDING, PENDING, Export
from tidings.messages.models import Message, MessageEvent
from tidings.messages.repository import MessageRepository
from tidings.messages.status import FINAL_STATUSES, Status
from tidings.routing.models import Supplier, SupplierHealth
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery
from tidings.webhooks.repository import WebhookRepository

# Columns that link a message to the one it stands in for (an SMS fallback leg of a Viber
# message, say). The console shows such relatives beside a message's history whichever of
# these names the messages table has; none exists yet.
LINK_COLUMNS = ("parent_id", "parent_message_id", "fallback_of_id", "fallback_for_id")


FINAL_VALUES = frozenset(status.value for status in FINAL_STATUSES)


def _history_rows() -> ColumnElement[bool]:
    """The `message_events` rows that the message rows do not already count: not `sent` and
    not a final status (`time_sent`, `time_dr`), except a first final status that a later
    one replaced (delivered, then read). Rows written before the message row held those
    (migration 0016) are skipped by the same rule, so nothing is counted twice."""
    now = aliased(Message)  # its own alias: the callers' queries may join messages too
    replaced = exists().where(now.id == MessageEvent.message_id, now.status != MessageEvent.status)
    return or_(
        MessageEvent.status.not_in(sorted(FINAL_VALUES | {Status.SENT.value})),
        and_(MessageEvent.status.in_(sorted(FINAL_VALUES)), replaced),
    )


def create_reader_engine(url: str) -> AsyncEngine:
    """The console's own read-only connections, opened per request (NullPool).

    On SQLite the gateway's engine has one connection, which every write waits for: a page's
    aggregates must not hold it. Here each statement is its own WAL read snapshot, which no
    writer ever waits on. Nothing is pooled, so there is nothing to dispose of.
    """
    url = normalize_database_url(url)
    if not url.startswith("sqlite"):
        return create_async_engine(
            url,
            poolclass=NullPool,
            connect_args={"server_settings": {"default_transaction_read_only": "on"}},
        )
    engine = create_async_engine(url, poolclass=NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit: no BEGIN, no lock
        cursor = dbapi_connection.cursor()
        for pragma in ("PRAGMA busy_timeout=10000", "PRAGMA query_only=ON"):
            cursor.execute(pragma)
        cursor.close()

    return engine


@dataclass(frozen=True, slots=True)
class QueueDepths:
    dispatch_due: int
    dispatch_waiting: int  # scheduled or backing off: not due yet
    dispatch_retrying: int  # failed at least once
    webhooks_due: int
    webhooks_waiting: int
    exports_pending: int
    receipts_unmatched: int


@dataclass(frozen=True, slots=True)
class SupplierQueue:
    supplier_id: int
    jobs: int
    due: int
    retrying: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    at: datetime
    status: str
    detail: str | None
    message_id: int
    channel: str
    msisdn: str
    country: str
    client_id: int
    client_name: str
    supplier_name: str | None


@dataclass(frozen=True, slots=True)
class EndpointTrouble:
    client_id: int
    client_name: str
    url: str
    retrying: int
    failed: int
    last_error: str | None
    last_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClientLine:
    id: int
    name: str
    balance: Any
    blocked: bool
    messages_today: int


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _bucket(self, column: Any, seconds: int) -> ColumnElement[int]:
        """The number of the `seconds`-long bucket a time falls in (Unix time // seconds)."""
        # Inlined, not bound: GROUP BY must repeat the select's expression exactly.
        size: ColumnElement[int] = literal_column(str(int(seconds)), Integer)
        if self._dialect == "sqlite":
            # Times are ISO text on SQLite; strftime('%s') reads them as Unix seconds.
            return cast(func.strftime("%s", column), Integer) // size
        return cast(func.floor(func.extract("epoch", column) / size), BigInteger)

    # Traffic.

    async def event_counts(
        self, since: datetime, until: datetime, bucket_seconds: int
    ) -> list[tuple[int, str, int]]:
        """(bucket, status, count) of status changes in [since, until).

        A message's hand-over and final status live on its row (`time_sent`, `time_dr`),
        the rest in `message_events` (`_history_rows`): three range scans, merged here.
        """
        counts: dict[tuple[int, str], int] = {}
        sent = self._bucket(Message.time_sent, bucket_seconds).label("bucket")
        final = self._bucket(Message.time_dr, bucket_seconds).label("bucket")
        queries: list[Any] = [
            select(sent, literal_column(f"'{Status.SENT.value}'"), func.count())
            .where(Message.time_sent >= since, Message.time_sent < until)
            .group_by(sent),
            select(final, Message.status, func.count())
            .where(Message.time_dr >= since, Message.time_dr < until)
            .group_by(final, Message.status),
        ]
        for query in queries:
            for b, status, n in await self.session.execute(query):
                counts[(int(b), str(status))] = counts.get((int(b), str(status)), 0) + int(n)
        bucket = self._bucket(MessageEvent.at, bucket_seconds).label("bucket")
        history = (
            select(bucket, MessageEvent.status, func.count())
            .select_from(MessageEvent)
            .where(MessageEvent.at >= since, MessageEvent.at < until, _history_rows())
            .group_by(bucket, MessageEvent.status)
        )
        for b, status, n in await self.session.execute(history):
            counts[(int(b), str(status))] = counts.get((int(b), str(status)), 0) + int(n)
        return [(b, status, n) for (b, status), n in sorted(counts.items())]

    async def accepted_counts(
        self,
        since: datetime,
        until: datetime,
        bucket_seconds: int,
        *,
        client_id: int | None = None,
        by_status: bool = False,
    ) -> list[tuple[int, str, int]]:
        """(bucket, status or "accepted", count) of messages accepted in [since, until)."""
        bucket = self._bucket(Message.time_in, bucket_seconds).label("bucket")
        grouping: list[Any] = [bucket, Message.status] if by_status else [bucket]
        query = (
            select(*grouping, func.count())
            .select_from(Client)
            .join(
                Message,
                and_(
                    Message.client_id == Client.id,
                    Message.time_in >= since,
                    Message.time_in < until,
                ),
            )
            .group_by(*grouping)
        )
        if client_id is not None:
            query = query.where(Client.id == client_id)
        result = await self.session.execute(query)
        if by_status:
            return [(int(b), str(s), int(n)) for b, s, n in result]
        return [(int(b), "accepted", int(n)) for b, n in result]

    async def outcomes(
        self, since: datetime, statuses: Collection[str]
    ) -> list[tuple[int | None, str, str, int]]:
        """(supplier id, country, status, count) of changes to `statuses` since `since`:
        one walk of the window serves both the per-supplier and the per-country view."""
        wanted = set(statuses)
        counts: dict[tuple[int | None, str, str], int] = {}
        queries: list[Any] = []
        if Status.SENT.value in wanted:
            queries.append(
                select(
                    Message.supplier_id,
                    Message.country,
                    literal_column(f"'{Status.SENT.value}'"),
                    func.count(),
                )
                .where(Message.time_sent >= since)
                .group_by(Message.supplier_id, Message.country)
            )
        finals = sorted(wanted & FINAL_VALUES)
        if finals:
            queries.append(
                select(Message.supplier_id, Message.country, Message.status, func.count())
                .where(Message.time_dr >= since, Message.status.in_(finals))
                .group_by(Message.supplier_id, Message.country, Message.status)
            )
        queries.append(
            select(Message.supplier_id, Message.country, MessageEvent.status, func.count())
            .select_from(MessageEvent)
            .join(Message, Message.id == MessageEvent.message_id)
            .where(
                MessageEvent.at >= since,
                MessageEvent.status.in_(sorted(wanted)),
                _history_rows(),
            )
            .group_by(Message.supplier_id, Message.country, MessageEvent.status)
        )
        for query in queries:
            for i, c, st, n in await self.session.execute(query):
                key = (None if i is None else int(i), str(c), str(st))
                counts[key] = counts.get(key, 0) + int(n)
        return [(i, c, st, n) for (i, c, st), n in counts.items()]

    async def latest_failures(
        self, since: datetime, statuses: Collection[str], limit: int
    ) -> list[Failure]:
        """The latest changes to `statuses` (final failures: the message rows' `time_dr`;
        anything else from the history rows), newest first."""
        wanted = sorted(statuses)
        common = (
            Message.id,
            Message.channel,
            Message.msisdn,
            Message.country,
            Client.id,
            Client.name,
            Supplier.name,
        )
        final = (
            select(Message.time_dr, Message.status, Message.status_detail, *common)
            .join(Client, Client.id == Message.client_id)
            .outerjoin(Supplier, Supplier.id == Message.supplier_id)
            .where(Message.time_dr >= since, Message.status.in_(wanted))
            .order_by(Message.time_dr.desc(), Message.id.desc())
            .limit(limit)
        )
        history = (
            select(MessageEvent.at, MessageEvent.status, MessageEvent.detail, *common)
            .select_from(MessageEvent)
            .join(Message, Message.id == MessageEvent.message_id)
            .join(Client, Client.id == Message.client_id)
            .outerjoin(Supplier, Supplier.id == Message.supplier_id)
            .where(MessageEvent.at >= since, MessageEvent.status.in_(wanted), _history_rows())
            .order_by(MessageEvent.at.desc(), MessageEvent.id.desc())
            .limit(limit)
        )
        rows = [Failure(*row) for row in await self.session.execute(final)]
        rows += [Failure(*row) for row in await self.session.execute(history)]
        rows.sort(key=lambda f: (f.at, f.message_id), reverse=True)
        return rows[:limit]

    # Queues and suppliers.

    async def queue_depths(self, now: datetime) -> QueueDepths:
        jobs = (
            await self.session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((DispatchJob.due_at <= now, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((DispatchJob.attempts > 0, 1), else_=0)), 0),
                )
            )
        ).one()
        hooks = (
            await self.session.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(case((WebhookDelivery.next_attempt_at <= now, 1), else_=0)), 0
                    ),
                ).where(WebhookDelivery.state == "pending")
            )
        ).one()
        exports = await self.session.execute(
            select(func.count()).where(Export.state.in_([PENDING, BUILDING]))
        )
        receipts = await self.session.execute(
            select(func.count()).select_from(Receipt).where(Receipt.message_id.is_(None))
        )
        total, due, retrying = (int(v) for v in jobs)
        hooks_total, hooks_due = (int(v) for v in hooks)
        return QueueDepths(
            dispatch_due=due,
            dispatch_waiting=total - due,
            dispatch_retrying=retrying,
            webhooks_due=hooks_due,
            webhooks_waiting=hooks_total - hooks_due,
            exports_pending=int(exports.scalar_one()),
            receipts_unmatched=int(receipts.scalar_one()),
        )

    async def supplier_queues(self, now: datetime) -> dict[int, SupplierQueue]:
        result = await self.session.execute(
            select(
                DispatchJob.supplier_id,
                func.count(),
                func.coalesce(func.sum(case((DispatchJob.due_at <= now, 1), else_=0)), 0),
                func.coalesce(func.sum(case((DispatchJob.attempts > 0, 1), else_=0)), 0),
                func.max(DispatchJob.last_error),
            ).group_by(DispatchJob.supplier_id)
        )
        return {
            int(s): SupplierQueue(int(s), int(n), int(d), int(r), e) for s, n, d, r, e in result
        }

    async def suppliers(self) -> Sequence[Supplier]:
        result = await self.session.execute(select(Supplier).order_by(Supplier.name))
        return result.scalars().all()

    async def breakers(self) -> dict[int, tuple[str, str | None]]:
        """Each supplier's circuit breaker: (state, why), docs/routing.md."""
        result = await self.session.execute(
            select(SupplierHealth.supplier_id, SupplierHealth.state, SupplierHealth.reason)
        )
        return {supplier_id: (state, reason) for supplier_id, state, reason in result}

    # Webhooks.

    async def failing_endpoints(self, since: datetime, limit: int) -> list[EndpointTrouble]:
        """Endpoints with deliveries being retried now, or dropped since `since`."""
        retrying = case(
            (and_(WebhookDelivery.state == "pending", WebhookDelivery.attempts > 0), 1), else_=0
        )
        failed = case((WebhookDelivery.state == "failed", 1), else_=0)
        result = await self.session.execute(
            select(
                WebhookDelivery.client_id,
                Client.name,
                WebhookDelivery.url,
                func.sum(retrying),
                func.sum(failed),
                func.max(WebhookDelivery.last_error),
                func.max(WebhookDelivery.next_attempt_at),
            )
            .join(Client, Client.id == WebhookDelivery.client_id)
            .where(
                or_(
                    and_(WebhookDelivery.state == "pending", WebhookDelivery.attempts > 0),
                    and_(
                        WebhookDelivery.state == "failed",
                        WebhookDelivery.next_attempt_at >= since,
                    ),
                )
            )
            .group_by(WebhookDelivery.client_id, Client.name, WebhookDelivery.url)
            .order_by(func.sum(failed).desc(), func.sum(retrying).desc())
            .limit(limit)
        )
        return [
            EndpointTrouble(int(c), n, u, int(r), int(f), e, at) for c, n, u, r, f, e, at in result
        ]

    async def deliveries_of_message(
        self, message_id: int
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        result = await self.session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.message_id == message_id)
            .order_by(WebhookDelivery.id)
        )
        return await WebhookRepository(self.session).with_attempts(list(result.scalars()))

    async def deliveries_of_client(
        self, client_id: int, limit: int
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        return await WebhookRepository(self.session).recent(client_id, limit)

    # Clients.

    async def clients(self, since: datetime) -> list[ClientLine]:
        today = func.count(Message.id)
        result = await self.session.execute(
            select(Client.id, Client.name, Client.balance, Client.blocked, today)
            .select_from(Client)
            .outerjoin(Message, and_(Message.client_id == Client.id, Message.time_in >= since))
            .group_by(Client.id, Client.name, Client.balance, Client.blocked)
            .order_by(Client.name)
        )
        return [ClientLine(int(i), n, b, bool(k), int(c)) for i, n, b, k, c in result]

    async def client(self, client_id: int) -> Client | None:
        return await self.session.get(Client, client_id)

    async def client_messages(self, client_id: int, limit: int) -> Sequence[Message]:
        result = await self.session.execute(
            select(Message)
            .where(Message.client_id == client_id)
            .order_by(Message.time_in.desc(), Message.id.desc())
            .limit(limit)
        )
        return result.scalars().all()

    # Messages.

    async def message(self, message_id: int) -> Message | None:
        return await self.session.get(Message, message_id)

    async def find_messages(
        self, *, message_id: int | None, reference: str | None, msisdn: str | None, limit: int
    ) -> list[Message]:
        """Messages with this id, this reference (any client) or this phone number."""
        found: dict[int, Message] = {}
        if message_id is not None:
            message = await self.session.get(Message, message_id)
            if message is not None:
                found[message.id] = message
        if reference:
            # Per client, through the (client_id, reference) unique index.
            result = await self.session.execute(
                select(Message)
                .select_from(Client)
                .join(
                    Message,
                    and_(Message.client_id == Client.id, Message.reference == reference),
                )
                .limit(limit)
            )
            found.update((m.id, m) for m in result.scalars())
        if msisdn:
            result = await self.session.execute(
                select(Message)
                .where(Message.msisdn == msisdn)
                .order_by(Message.id.desc())
                .limit(limit)
            )
            found.update((m.id, m) for m in result.scalars())
        return sorted(found.values(), key=lambda m: m.id, reverse=True)[:limit]

    async def events(self, message: Message) -> Sequence[MessageEvent]:
        return await MessageRepository(self.session).events(message)

    async def receipts(self, message_id: int) -> Sequence[Receipt]:
        result = await self.session.execute(
            select(Receipt).where(Receipt.message_id == message_id).order_by(Receipt.id)
        )
        return result.scalars().all()

    async def dispatch_job(self, message_id: int) -> DispatchJob | None:
        return await self.session.get(DispatchJob, message_id)

    async def names(
        self, client_ids: Collection[int], supplier_ids: Collection[int]
    ) -> tuple[dict[int, str], dict[int, str]]:
        clients: dict[int, str] = {}
        suppliers: dict[int, str] = {}
        if client_ids:
            rows = await self.session.execute(
                select(Client.id, Client.name).where(Client.id.in_(list(client_ids)))
            )
            clients = {int(i): n for i, n in rows}
        if supplier_ids:
            rows = await self.session.execute(
                select(Supplier.id, Supplier.name).where(Supplier.id.in_(list(supplier_ids)))
            )
            suppliers = {int(i): n for i, n in rows}
        return clients, suppliers

    async def related(self, message: Message) -> list[tuple[Message, bool]]:
        """Messages linked to this one through a link column: (message, is it a child).

        One query per direction: an OR of the two would make SQLite scan the link's index.
        """
        columns = Message.__table__.c
        found: dict[int, tuple[Message, bool]] = {}
        for name in LINK_COLUMNS:
            if name not in columns:
                continue
            children = await self.session.execute(
                select(Message).where(columns[name] == message.id).order_by(Message.id)
            )
            found.update((m.id, (m, True)) for m in children.scalars())
            parent = getattr(message, name, None)
            if parent is not None and parent != message.id:
                row = await self.session.get(Message, int(parent))
                if row is not None:
                    found[row.id] = (row, False)
        return [found[key] for key in sorted(found)]
