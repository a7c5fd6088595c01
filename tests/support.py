"""Builders the tests share: a priced, routed world with one client."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.accounts.service import (
    Caller,
    KeyKind,
    create_client,
    hash_key,
    issue_dr_credentials,
)
from tidings.api.app import create_app
from tidings.billing.service import import_prices
from tidings.clock import Clock
from tidings.config import Settings
from tidings.connectors.base import OutboundMessage, SubmitOutcome, SubmitResult
from tidings.db.engine import transaction
from tidings.delivery.service import (
    ClaimedBatch,
    RetryPolicy,
    apply_early_receipts,
    claim_batch,
    record_outcomes,
)
from tidings.delivery.worker import WorkerOptions
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.changes import MessageRecord
from tidings.messages.models import Message, MessageEvent
from tidings.messages.repository import MessageRepository
from tidings.messages.storing import accept_sms
from tidings.numbering import CountryTable
from tidings.routing.models import Supplier
from tidings.routing.service import create_route, create_supplier

PRICES_CSV = """type,tariff,country,price,currency
sms,0,UA,0.02,EUR
sms,0,SE,0.045,EUR
sms,9,UA,0.025,EUR
viber,0,UA,0.01,EUR
hlr,9,UA,0.002,EUR
"""


@dataclass(frozen=True)
class World:
    client_id: int
    live_key: str
    test_key: str
    supplier_id: int


async def build_world(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    balance: Decimal = Decimal("10"),
    supplier_options: dict[str, Any] | None = None,
    name: str = "acme",
) -> World:
    async with transaction(sessions) as session:
        await import_prices(session, CountryTable.load(), PRICES_CSV)
        created = await create_client(session, clock, name=name, balance=balance)
        supplier = await create_supplier(
            session, clock, name=f"sim-{name}", kind="simulator", options=supplier_options or {}
        )
        await create_route(session, clock, type_="sms", supplier=supplier.name)
    return World(created.client.id, created.live_key, created.test_key, supplier.id)


@asynccontextmanager
async def api_client(
    database_url: str,
    clock: Clock | None = None,
    *,
    with_workers: bool = False,
    settings: dict[str, Any] | None = None,
    worker_options: WorkerOptions | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over ASGI (its lifespan runs), for API-level integration tests.

    Caches are off (TTL 0) unless a test asks: tests change keys and prices in the database
    and expect the next request to see it.
    """
    app = create_app(
        Settings(database_url=database_url, **{"cache_ttl": 0, **(settings or {})}),
        with_workers=with_workers,
        clock=clock,
        worker_options=worker_options,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tidings") as client:
            yield client


async def set_dlr_credentials(
    sessions: async_sessionmaker[AsyncSession], supplier_id: int, login: str, password: str
) -> None:
    """Give a supplier chosen /api/dlr credentials (the seeds' LOGIN / PASSWORD)."""
    async with transaction(sessions) as session:
        supplier = await session.get(Supplier, supplier_id)
        assert supplier is not None
        supplier.dlr_login = login
        supplier.dlr_password_hash = hash_key(password)


async def issue_dr_login(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, client_id: int
) -> tuple[str, str]:
    """Fresh DR API credentials for a client, as `tidings clients dr-credentials` issues."""
    async with transaction(sessions) as session:
        issued = await issue_dr_credentials(session, client_id)
    return issued.login, issued.password


async def accept_messages(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    world: World,
    count: int = 1,
    *,
    body: str = "hello",
    validity_hours: int = 72,
    first_phone: int = 380971000000,
) -> list[int]:
    """Accept `count` SMS for the world's client (references ref0, ref1, …); their ids."""
    items = [SmsItem(str(first_phone + i), f"ref{i}", "test", body) for i in range(count)]
    request = SmsRequest(
        destination="phones" if count > 1 else "phone", items=items, validity_hours=validity_hours
    )
    caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
    async with transaction(sessions) as session:
        accepted = await accept_sms(session, clock, caller, request, Limits())
    return [item.id for item in accepted.items]


class FixedIdConnector:
    """Accepts every message with the next supplier id from a list the test chose."""

    def __init__(self, supplier_id: int, supplier_ids: Sequence[str]) -> None:
        self.supplier_id = supplier_id
        self.supplier_ids = iter(supplier_ids)

    async def submit(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        return [
            SubmitOutcome(m.message_id, SubmitResult.ACCEPTED, next(self.supplier_ids))
            for m in batch
        ]


async def claim_and_submit(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    world: World,
    supplier_ids: Sequence[str],
) -> tuple[ClaimedBatch, list[SubmitOutcome]]:
    """The dispatcher's first half: lease due messages and hand them to the supplier."""
    async with transaction(sessions) as session:
        batch = await claim_batch(session, clock, world.supplier_id, 1000, lease_seconds=60)
    outcomes = await FixedIdConnector(world.supplier_id, supplier_ids).submit(batch.to_send)
    return batch, outcomes


async def record_submits(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    world: World,
    batch: ClaimedBatch,
    outcomes: Sequence[SubmitOutcome],
) -> None:
    """The dispatcher's second half: record what the supplier answered."""
    async with transaction(sessions) as session:
        await record_outcomes(session, clock, world.supplier_id, batch, outcomes, RetryPolicy())
    async with transaction(sessions) as session:  # as a lane does, after the commit
        await apply_early_receipts(session, clock, outcomes)


async def send_all(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    world: World,
    supplier_ids: Sequence[str],
) -> None:
    """Dispatch every due message; the supplier answers with `supplier_ids` in id order."""
    batch, outcomes = await claim_and_submit(sessions, clock, world, supplier_ids)
    await record_submits(sessions, clock, world, batch, outcomes)


@dataclass(frozen=True)
class Received:
    """One request a Receiver got; `status` is what it answered (None: no answer sent)."""

    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int | None

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)


Responder = Callable[[Received, int], Awaitable[tuple[int, bytes]]]


class Receiver:
    """A tiny HTTP/1.1 server on 127.0.0.1 standing in for a client's webhook endpoint.

    Real sockets, keep-alive, no framework: the worker's httpx client is tested as it runs
    in production. `respond(request, n)` (n counts requests from 1) decides each answer;
    by default the first `fail_first` requests get 500 and the rest 200.
    """

    def __init__(
        self, *, fail_first: int = 0, respond: Responder | None = None, port: int = 0
    ) -> None:
        self.fail_first = fail_first
        self.respond = respond
        self.port = port
        self.requests: list[Received] = []
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every open connection (as a crashed endpoint would)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def answered(self, status: int = 200) -> list[Received]:
        return [r for r in self.requests if r.status == status]

    def successes_by_id(self) -> Counter[str]:
        """How many 2xx each webhook-id got: what a receiver that dedupes would count."""
        return Counter(r.webhook_id for r in self.requests if r.status and r.status < 300)

    async def _answer(self, request: Received, number: int) -> tuple[int, bytes]:
        if self.respond is not None:
            return await self.respond(request, number)
        return (500, b"not now") if number <= self.fail_first else (200, b"ok")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                method, target, _ = line.split(" ", 2)
                headers = {}
                for field in fields:
                    name, _, value = field.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(method, target, headers, body, None)
                self.requests.append(request)
                index = len(self.requests) - 1
                status, content = await self._answer(request, len(self.requests))
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-length: {len(content)}\r\n"
                    "content-type: application/json\r\n\r\n".encode()
                    + content
                )
                await writer.drain()
                self.requests[index] = Received(method, target, headers, body, status)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()


def message_record(**fields: Any) -> MessageRecord:
    """A plain message row (as the status-change path sees one); defaults for what a test
    does not care about."""
    from datetime import UTC, datetime, timedelta

    time_in = fields.pop("time_in", datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    values: dict[str, Any] = {
        "id": 1,
        "client_id": 1,
        "channel": "sms",
        "source": "api",
        "msisdn": "380972000001",
        "country": "UA",
        "originator": "Tidings",
        "body": "hello",
        "encoding": "gsm7",
        "parts": 1,
        "tariff": 0,
        "price": Decimal("0.02"),
        "currency": "EUR",
        "status": "queued",
        "expires_at": time_in + timedelta(hours=72),
        "time_in": time_in,
    }
    values.update(fields)
    return MessageRecord(**values)


async def history(
    session: AsyncSession, message_ids: Sequence[int] | None = None
) -> list[tuple[int, str]]:
    """(message id, status) of every status change after acceptance, as the history shows
    it (the hand-over and the final status are rebuilt from the message row, issue 18),
    message by message in id order, each in time order."""
    query = select(Message).order_by(Message.id)
    if message_ids is not None:
        query = query.where(Message.id.in_(list(message_ids)))
    repo = MessageRepository(session)
    changes: list[tuple[int, str]] = []
    for message in (await session.scalars(query)).all():
        changes += [(message.id, event.status) for event in await repo.events(message)]
    return changes


async def history_statuses(
    session: AsyncSession, message_ids: Sequence[int] | None = None
) -> list[str]:
    return [status for _, status in await history(session, message_ids)]


async def stored_events(session: AsyncSession) -> list[str]:
    """The `message_events` rows themselves: only what the message rows do not hold."""
    return list(await session.scalars(select(MessageEvent.status).order_by(MessageEvent.id)))
