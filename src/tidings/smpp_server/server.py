"""The SMPP 3.4 listener: binds, submit_sm / data_sm into the acceptance pipeline, receipts.

One :class:`~tidings.smpp_server.connection.ServerConnection` per TCP connection. Requests
are answered as their work ends (a submit waits for the group commit of the accept queue), so
several submits of one bind are in flight at once, up to ``window``. Receipts are read from
``smpp_receipts`` by one :class:`~tidings.smpp_server.receipts.ReceiptSender` and sent as
``deliver_sm`` to a receiver or transceiver bind of their client; a receipt is marked sent
only after a ``deliver_sm_resp`` ESME_ROK.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.accounts.models import Client
from tidings.accounts.service import Caller, KeyKind, password_matches
from tidings.clock import Clock
from tidings.config import Settings
from tidings.connectors.smpp.concat import charset_named
from tidings.connectors.smpp.pdu import (
    CommandStatus,
    DataSm,
    SubmitSm,
)
from tidings.connectors.smpp.text import TextCharset
from tidings.db.engine import transaction
from tidings.delivery.service import cancel_unsent
from tidings.errors import (
    InvalidRequest,
)
from tidings.messages.acceptance import (
    Acceptance,
    Limits,
    PreparedSms,
    SmsItem,
    SmsRequest,
    prepare_sms,
)
from tidings.messages.catalog import Catalog, CatalogCache
from tidings.messages.models import Message
from tidings.messages.status import Status
from tidings.messages.writer import AcceptQueue
from tidings.observability.metrics import Metrics
from tidings.smpp_server.assembly import AfterWrite, Assembler
from tidings.smpp_server.binds import BindDelays, BindGuard
from tidings.smpp_server.connection import ServerConnection
from tidings.smpp_server.receipts import (
    ReceiptBind,
    ReceiptSender,
)
from tidings.smpp_server.store import SMPP_SOURCE, find_part, remember_receipt_requests
from tidings.smpp_server.submits import submit_times

log = logging.getLogger("tidings.smpp.server")


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 2775
    window: int = 100  # submit_sm in flight per bind; more get ESME_RMSGQFUL
    receipt_window: int = 50  # deliver_sm awaiting an answer per bind
    response_timeout: float = 10.0  # for our deliver_sm and unbind
    inactivity: float = 120.0  # a bind silent this long (no enquire_link either) is closed
    # Parts of a long message wait this long (from the first) for the rest, then are given
    # up with UNDELIV receipts where asked (docs/smpp-server.md).
    concat_timeout: float = 300.0
    max_concat: int = 50  # incomplete long messages held per client
    receipt_poll: float = 0.2
    receipt_retry: float = 5.0  # a receipt refused by the client is offered again after this
    default_validity: timedelta = timedelta(hours=72)  # as the REST API's
    bind_delays: BindDelays = field(default_factory=BindDelays)  # failed binds: binds.py

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerOptions:
        return cls(host=settings.smpp_host, port=settings.smpp_port or 0)


class TokenBucket:
    """``rate`` per second with a burst of one second's worth."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class BoundClient:
    client_id: int
    system_id: str
    caller: Caller
    max_binds: int
    bucket: TokenBucket | None
    charset: TextCharset = TextCharset.GSM7  # what data_coding 0 means for its submits


class SmppServer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        catalog: CatalogCache,
        accepts: AcceptQueue,
        limits: Limits,
        options: ServerOptions,
        *,
        metrics: Metrics | None = None,
        bind_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.catalog = catalog
        self.accepts = accepts
        self.limits = limits
        self.options = options
        self.port = options.port
        self.receipts = ReceiptSender(
            sessions,
            clock,
            self.receivers,
            window=options.receipt_window,
            poll=options.receipt_poll,
            retry=options.receipt_retry,
            response_timeout=options.response_timeout,
            on_turn=self._expire_parts,
        )
        self.binds = BindGuard(
            options.bind_delays,
            sleep=bind_sleep,
            on_failure=metrics.smpp_bind_failed if metrics is not None else lambda: None,
        )
        self.assembler = Assembler(
            sessions,
            clock,
            timeout=options.concat_timeout,
            max_open=options.max_concat,
            max_parts=limits.max_parts,
        )
        self._server: asyncio.Server | None = None
        self._connections: set[ServerConnection] = set()
        self._binds: dict[int, list[ServerConnection]] = {}
        self._buckets: dict[int, TokenBucket] = {}
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._receipts: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        loaded = await self.assembler.load()
        if loaded:
            log.info("SMPP server: %d parts of incomplete long messages picked up", loaded)
        self._server = await asyncio.start_server(
            self._connected, self.options.host, self.options.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._receipts = asyncio.get_running_loop().create_task(self.receipts.run(self._stopping))
        log.info("SMPP server on %s:%d", self.options.host, self.port)

    async def stop(self) -> None:
        self._stopping.set()
        self.receipts.due.set()
        if self._server is not None:
            self._server.close()
        if self._receipts is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._receipts, self.options.response_timeout + 1)
        await asyncio.gather(*(c.unbind() for c in list(self._connections)))
        await self.assembler.wait(self.options.response_timeout * 3)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.options.response_timeout * 3 + 2)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping.is_set():
            writer.close()
            return
        connection = ServerConnection(self, reader, writer, next(self._numbers))
        self._connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            if task is not None:
                self._tasks.discard(task)

    # --- binds ---

    async def authenticate(self, system_id: str, password: str) -> tuple[int, BoundClient | None]:
        """The client these credentials belong to, or the command_status to refuse with.

        An unknown system_id and a wrong password both get ESME_RINVPASWD (the password is
        hashed and compared in constant time either way), a blocked client ESME_RBINDFAIL.
        """
        client: Client | None = None
        if system_id:
            async with transaction(self.sessions) as session:
                client = (
                    await session.execute(select(Client).where(Client.smpp_system_id == system_id))
                ).scalar_one_or_none()
        if not password_matches(password, client.smpp_password_hash if client else None):
            return CommandStatus.ESME_RINVPASWD, None
        assert client is not None
        if client.blocked:
            return CommandStatus.ESME_RBINDFAIL, None
        bucket: TokenBucket | None = None
        if client.smpp_throughput:
            bucket = self._buckets.get(client.id)
            if bucket is None or bucket.rate != client.smpp_throughput:
                bucket = self._buckets[client.id] = TokenBucket(client.smpp_throughput)
        caller = Caller(client_id=client.id, key_kind=KeyKind.LIVE, tariff=client.tariff)
        return CommandStatus.ESME_ROK, BoundClient(
            client.id,
            system_id,
            caller,
            client.smpp_max_binds,
            bucket,
            charset_named(client.smpp_charset),
        )

    def register(self, connection: ServerConnection, client: BoundClient) -> bool:
        binds = self._binds.setdefault(client.client_id, [])
        if len(binds) >= client.max_binds:
            return False
        binds.append(connection)
        return True

    def unregister(self, connection: ServerConnection) -> None:
        if connection.client is None:
            return
        binds = self._binds.get(connection.client.client_id, [])
        if connection in binds:
            binds.remove(connection)
        if not binds:
            self._binds.pop(connection.client.client_id, None)

    def binds_of(self, client_id: int) -> list[ServerConnection]:
        return list(self._binds.get(client_id, []))

    # --- submitting ---

    def accept_nowait(
        self,
        client: BoundClient,
        pdu: SubmitSm | DataSm,
        body: str,
        after_write: AfterWrite | None = None,
    ) -> asyncio.Future[Acceptance]:
        """Price, route and queue one message for the accept queue's next commit, without a
        task; the future settles once it is stored (or refused). Refusals found before
        queueing raise. While the price catalog reloads (every few seconds at most), a task
        waits for it first. ``after_write`` (a long message's parts) replaces the receipt
        request row."""
        catalog = self.catalog.fresh()
        if catalog is None:
            return asyncio.ensure_future(self._accept_after_reload(client, pdu, body, after_write))
        return self.accepts.submit_nowait(self._prepare(catalog, client, pdu, body, after_write))

    async def _accept_after_reload(
        self,
        client: BoundClient,
        pdu: SubmitSm | DataSm,
        body: str,
        after_write: AfterWrite | None,
    ) -> Acceptance:
        prepared = self._prepare(await self.catalog.get(), client, pdu, body, after_write)
        return await self.accepts.submit(prepared)

    def _prepare(
        self,
        catalog: Catalog,
        client: BoundClient,
        pdu: SubmitSm | DataSm,
        body: str,
        after_write: AfterWrite | None = None,
    ) -> PreparedSms:
        if not pdu.source_addr:
            raise InvalidRequest("source_addr is empty", reason="bad_originator")
        send_at, expires_at = submit_times(pdu, self.clock.now())
        wanted = pdu.registered_delivery & 0x03

        async def remember(session: AsyncSession, message_ids: Sequence[int]) -> None:
            await remember_receipt_requests(session, message_ids, wanted)

        request = SmsRequest(
            destination="phone",
            items=[SmsItem(pdu.destination_addr.lstrip("+"), None, pdu.source_addr, body)],
            source=SMPP_SOURCE,
            validity_hours=int(self.options.default_validity.total_seconds()) // 3600,
            send_at=send_at,
            expires_at=expires_at,
            # The usual case (a receipt for the final status) needs no row.
            after_write=after_write or (None if wanted == 1 else remember),
        )
        return prepare_sms(catalog, client.caller, request, self.limits)

    async def cancel(self, client_id: int, message_id: int) -> bool:
        """Cancel a message of this client not yet handed to a supplier (refunded)."""
        async with transaction(self.sessions) as session:
            return await cancel_unsent(
                session, self.clock, message_id, client_id, "cancelled by cancel_sm"
            )

    async def query(
        self, client_id: int, message_id: int | str
    ) -> tuple[str, datetime | None] | None:
        """(status, final at) of a message, by its id or by a part's own id."""
        async with transaction(self.sessions) as session:
            if isinstance(message_id, str):
                part = await find_part(session, client_id, message_id)
                if part is None:
                    return None
                if part[0] is None:  # never whole: waiting for the rest, or given up
                    return (Status.UNDELIVERED, part[1]) if part[1] else (Status.ACCEPTED, None)
                message_id = part[0]
            row = (
                await session.execute(
                    select(Message.status, Message.time_dr).where(
                        Message.id == message_id, Message.client_id == client_id
                    )
                )
            ).first()
        return None if row is None else (row[0], row[1])

    # --- receipts ---

    def receivers(self) -> dict[int, list[ReceiptBind]]:
        """The open receiver/transceiver binds of each bound client."""
        return {
            client_id: [c for c in binds if c.can_receive and not c.closed]
            for client_id, binds in self._binds.items()
        }

    def _expire_parts(self) -> None:
        self.assembler.expire()


async def serve_smpp(settings: Settings, stop: asyncio.Event, clock: Clock) -> None:
    """``tidings smpp``: only the SMPP server (with its own accept queue) until ``stop``."""
    from tidings.db.engine import create_engine, create_sessionmaker
    from tidings.wakeups import Wakeups

    engine = create_engine(settings.database_url)
    wakeups = Wakeups.for_database(settings.database_url, idle_poll=settings.idle_poll)
    await wakeups.start()
    sessions = create_sessionmaker(engine, wakeups)
    accepts = AcceptQueue(sessions, clock)
    accepts.start()
    server = SmppServer(
        sessions,
        clock,
        CatalogCache(sessions, ttl=settings.cache_ttl),
        accepts,
        Limits(max_batch_size=settings.max_batch_size, max_parts=settings.max_sms_parts),
        ServerOptions.from_settings(settings),
    )
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
        await accepts.stop()
        await wakeups.stop()
        await engine.dispose()
