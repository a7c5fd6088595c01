"""The SMPP 3.4 listener: binds, submit_sm / data_sm into the acceptance pipeline, receipts.

One :class:`ServerConnection` per TCP connection. Requests are answered as their work ends
(a submit waits for the group commit of the accept queue), so several submits of one bind are
in flight at once, up to ``window``. Receipts are read from ``smpp_receipts`` by one
:class:`~tidings.smpp_server.receipts.ReceiptSender` and sent as ``deliver_sm`` to a receiver
or transceiver bind of their client; a receipt is marked sent only after a
``deliver_sm_resp`` ESME_ROK.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.accounts.models import Client
from tidings.accounts.service import Caller, KeyKind, password_matches
from tidings.clock import Clock
from tidings.config import Settings
from tidings.connectors.smpp.pdu import (
    HEADER,
    MAX_PDU_LENGTH,
    BindReceiver,
    BindReceiverResp,
    BindResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    BodyError,
    CancelSm,
    CancelSmResp,
    CommandStatus,
    DataSm,
    DataSmResp,
    DecodeError,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode,
    encode,
    is_response,
)
from tidings.connectors.smpp.smpptime import SmppTimeError, parse_smpp_time
from tidings.connectors.smpp.text import Concat, DecodedText, decode_short_message, parts_text
from tidings.connectors.smpp.tlv import Tag, int_value
from tidings.db.engine import transaction
from tidings.delivery.service import cancel_unsent
from tidings.errors import (
    InsufficientFunds,
    InvalidRequest,
    PricingError,
    RoutingError,
    TidingsError,
)
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest, prepare_sms
from tidings.messages.catalog import CatalogCache
from tidings.messages.models import Message
from tidings.messages.writer import AcceptQueue
from tidings.smpp_server.receipts import (
    Answered,
    ReceiptBind,
    ReceiptSender,
    message_state_of,
    receipt_pdu,
    smpp_time,
)
from tidings.smpp_server.store import SMPP_SOURCE, PendingReceipt, remember_receipt_requests

log = logging.getLogger("tidings.smpp.server")

SYSTEM_ID = "Tidings"
MAX_SEQUENCE = 0x7FFFFFFF

MAX_VALIDITY = timedelta(days=7)  # a longer validity_period is cut to this


class BadTime(TidingsError):
    """A schedule_delivery_time or validity_period that cannot be read or makes no sense."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 2775
    window: int = 100  # submit_sm in flight per bind; more get ESME_RMSGQFUL
    receipt_window: int = 50  # deliver_sm awaiting an answer per bind
    response_timeout: float = 10.0  # for our deliver_sm and unbind
    inactivity: float = 120.0  # a bind silent this long (no enquire_link either) is closed
    concat_timeout: float = 60.0  # parts of a long message wait this long for the rest
    max_concat: int = 50  # incomplete long messages held per bind
    receipt_poll: float = 0.2
    receipt_retry: float = 5.0  # a receipt refused by the client is offered again after this
    default_validity: timedelta = timedelta(hours=72)  # as the REST API's

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


@dataclass(slots=True)
class _Assembly:
    """The parts of one long message received so far, with their sequence numbers."""

    started: float
    total: int
    parts: dict[int, DecodedText] = field(default_factory=dict)
    waiting: list[Pdu] = field(default_factory=list)


class ServerConnection:
    """One ESME connected to us."""

    def __init__(
        self,
        server: SmppServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self.server = server
        self.options = server.options
        self.reader = reader
        self.writer = writer
        self.number = number
        self.client: BoundClient | None = None
        self.can_submit = False
        self.can_receive = False
        self.closed = False
        self._sequence = 0
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._assemblies: dict[tuple[str, str, int, int], _Assembly] = {}
        self.receipts_in_flight = 0

    @property
    def name(self) -> str:
        system_id = self.client.system_id if self.client else "-"
        return f"smpp-in#{self.number}({system_id})"

    # --- writing ---

    def send(self, pdu: Pdu) -> None:
        if not self.closed and not self.writer.transport.is_closing():
            self.writer.write(encode(pdu))

    async def request(self, pdu: Pdu) -> Pdu:
        """Send a request (deliver_sm, unbind) and wait for its answer, bounded in time."""
        if self.closed:
            raise ConnectionError(f"{self.name} is closed")
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        pdu.sequence_number = self._sequence
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[pdu.sequence_number] = future
        try:
            self.send(pdu)
            return await asyncio.wait_for(future, self.options.response_timeout)
        finally:
            self._pending.pop(pdu.sequence_number, None)

    # --- reading ---

    async def run(self) -> None:
        try:
            await self._read_loop()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            await self._close()

    async def _read_loop(self) -> None:
        while not self.closed:
            head = await asyncio.wait_for(self.reader.readexactly(4), self.options.inactivity)
            length = int.from_bytes(head, "big")
            if not HEADER.size <= length <= MAX_PDU_LENGTH:
                log.warning("%s: command_length %d, closing", self.name, length)
                self.send(GenericNack(0, CommandStatus.ESME_RINVCMDLEN))
                return
            data = head + await asyncio.wait_for(
                self.reader.readexactly(length - 4), self.options.response_timeout
            )
            try:
                pdu = decode(data)
            except BodyError as error:
                self.send(GenericNack(error.sequence_number, error.status))
                continue
            except DecodeError:  # pragma: no cover - the length was checked
                return
            if is_response(pdu.command_id):
                future = self._pending.get(pdu.sequence_number)
                if future is not None and not future.done():
                    future.set_result(pdu)
            elif not await self._request(pdu):
                return

    async def _request(self, pdu: Pdu) -> bool:
        """Handle one request; False when the connection is to end."""
        if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
            await self._bind(pdu)
        elif isinstance(pdu, EnquireLink):
            self.send(EnquireLinkResp(pdu.sequence_number))
        elif isinstance(pdu, Unbind):
            self.send(UnbindResp(pdu.sequence_number))
            return False
        elif isinstance(pdu, SubmitSm | DataSm):
            self._submit(pdu)
        elif isinstance(pdu, QuerySm):
            self._start(self._query(pdu))
        elif isinstance(pdu, CancelSm):
            self._start(self._cancel(pdu))
        elif isinstance(pdu, ReplaceSm):
            self.send(ReplaceSmResp(pdu.sequence_number, CommandStatus.ESME_RREPLACEFAIL))
        elif isinstance(pdu, UnknownPdu):
            self.send(GenericNack(pdu.sequence_number, CommandStatus.ESME_RINVCMDID))
        else:
            status = CommandStatus.ESME_RINVBNDSTS if self.client else CommandStatus.ESME_RINVCMDID
            self.send(GenericNack(pdu.sequence_number, status))
        return True

    # --- binding ---

    async def _bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        resp_class: type[BindResp]
        if isinstance(pdu, BindTransmitter):
            resp_class, submit, receive = BindTransmitterResp, True, False
        elif isinstance(pdu, BindReceiver):
            resp_class, submit, receive = BindReceiverResp, False, True
        else:
            resp_class, submit, receive = BindTransceiverResp, True, True
        if self.client is not None:
            self.send(resp_class(pdu.sequence_number, CommandStatus.ESME_RALYBND))
            return
        status, client = await self.server.authenticate(pdu.system_id, pdu.password)
        if client is None:
            log.info("%s: bind of %r refused", self.name, pdu.system_id)
            self.send(resp_class(pdu.sequence_number, status))
            return
        if not self.server.register(self, client):
            log.info("%s: %r has %d binds already", self.name, client.system_id, client.max_binds)
            self.send(resp_class(pdu.sequence_number, CommandStatus.ESME_RBINDFAIL))
            return
        self.client, self.can_submit, self.can_receive = client, submit, receive
        resp = resp_class(pdu.sequence_number, CommandStatus.ESME_ROK, system_id=SYSTEM_ID)
        if pdu.interface_version >= 0x34:
            resp.tlvs[Tag.SC_INTERFACE_VERSION] = int_value(0x34, 1)
        self.send(resp)
        if receive:
            self.server.receipts.due.set()

    # --- submitting ---

    def _submit(self, pdu: SubmitSm | DataSm) -> None:
        respond = SubmitSmResp if isinstance(pdu, SubmitSm) else DataSmResp
        client = self.client
        if client is None or not self.can_submit:
            self.send(respond(pdu.sequence_number, CommandStatus.ESME_RINVBNDSTS))
            return
        if len(self._tasks) >= self.options.window:
            self.send(respond(pdu.sequence_number, CommandStatus.ESME_RMSGQFUL))
            return
        if client.bucket is not None and not client.bucket.take():
            self.send(respond(pdu.sequence_number, CommandStatus.ESME_RTHROTTLED))
            return
        short_message = pdu.short_message if isinstance(pdu, SubmitSm) else b""
        text = decode_short_message(short_message, pdu.data_coding, pdu.esm_class, pdu.tlvs)
        concat = text.concat
        if concat is None or concat.total <= 1:
            self._start(self._accept(client, pdu, text.text, [pdu]))
            return
        self._add_part(client, pdu, text, concat)

    def _add_part(
        self, client: BoundClient, pdu: SubmitSm | DataSm, text: DecodedText, concat: Concat
    ) -> None:
        self.expire_parts()
        key = (pdu.source_addr, pdu.destination_addr, concat.reference, concat.total)
        assembly = self._assemblies.get(key)
        if assembly is None:
            if len(self._assemblies) >= self.options.max_concat:
                self._answer([pdu], CommandStatus.ESME_RMSGQFUL, "")
                return
            assembly = self._assemblies[key] = _Assembly(time.monotonic(), concat.total)
        if not 1 <= concat.seqnum <= concat.total or concat.seqnum in assembly.parts:
            self._answer([pdu], CommandStatus.ESME_RINVOPTPARAMVAL, "")
            return
        assembly.parts[concat.seqnum] = text
        assembly.waiting.append(pdu)
        if len(assembly.parts) == assembly.total:
            del self._assemblies[key]
            whole = parts_text(assembly.parts.values())
            self._start(self._accept(client, pdu, whole, assembly.waiting))

    def expire_parts(self) -> None:
        """Answer the parts of long messages that did not complete in time (and drop them)."""
        limit = time.monotonic() - self.options.concat_timeout
        for key, assembly in list(self._assemblies.items()):
            if assembly.started < limit:
                del self._assemblies[key]
                self._answer(assembly.waiting, CommandStatus.ESME_RSUBMITFAIL, "")

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(
        self, client: BoundClient, pdu: SubmitSm | DataSm, body: str, answer: Sequence[Pdu]
    ) -> None:
        try:
            message_id = await self.server.accept(client, pdu, body)
        except TidingsError as error:
            self._answer(answer, _status_of(error), "")
        except Exception:
            log.exception("%s: submit failed", self.name)
            self._answer(answer, CommandStatus.ESME_RSYSERR, "")
        else:
            self._answer(answer, CommandStatus.ESME_ROK, str(message_id))

    async def _query(self, pdu: QuerySm) -> None:
        """query_sm: the state of one of this client's messages (ESME_RQUERYFAIL if none)."""
        found = None
        if self.client is not None and pdu.message_id.strip().isdigit():
            try:
                found = await self.server.query(self.client.client_id, int(pdu.message_id))
            except Exception:
                log.exception("%s: query_sm failed", self.name)
        if found is None:
            self.send(QuerySmResp(pdu.sequence_number, CommandStatus.ESME_RQUERYFAIL))
            return
        status, done_at = found
        self.send(
            QuerySmResp(
                pdu.sequence_number,
                CommandStatus.ESME_ROK,
                message_id=pdu.message_id.strip(),
                final_date=smpp_time(done_at) if done_at else "",
                message_state=message_state_of(status),
            )
        )

    async def _cancel(self, pdu: CancelSm) -> None:
        """cancel_sm of one message by id: only one of this client's not yet handed over.

        Cancelling by service_type/addresses (no message_id) is not offered: ESME_RCANCELFAIL.
        """
        status = CommandStatus.ESME_RCANCELFAIL
        if self.client is None or not self.can_submit:
            status = CommandStatus.ESME_RINVBNDSTS
        elif pdu.message_id.strip().isdigit():
            try:
                if await self.server.cancel(self.client.client_id, int(pdu.message_id)):
                    status = CommandStatus.ESME_ROK
            except Exception:
                log.exception("%s: cancel_sm failed", self.name)
        self.send(CancelSmResp(pdu.sequence_number, status))

    def _answer(self, pdus: Sequence[Pdu], status: int, message_id: str) -> None:
        for pdu in pdus:
            if isinstance(pdu, DataSm):
                self.send(DataSmResp(pdu.sequence_number, status, message_id=message_id))
            else:
                self.send(SubmitSmResp(pdu.sequence_number, status, message_id=message_id))

    # --- receipts ---

    def deliver(self, receipt: PendingReceipt, answered: Answered) -> None:
        """Send one receipt; ``answered(receipt, ok)`` once the client answered (ok: ESME_ROK),
        did not answer within ``response_timeout``, or the connection ended."""
        loop = asyncio.get_running_loop()
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        sequence = self._sequence
        future: asyncio.Future[Pdu] = loop.create_future()
        self._pending[sequence] = future
        self.receipts_in_flight += 1
        timer = loop.call_later(self.options.response_timeout, _no_answer, future)

        def settle(done: asyncio.Future[Pdu]) -> None:
            timer.cancel()
            self._pending.pop(sequence, None)
            self.receipts_in_flight -= 1
            ok = (
                not done.cancelled()
                and done.exception() is None
                and done.result().command_status == CommandStatus.ESME_ROK
            )
            answered(receipt, ok)

        future.add_done_callback(settle)
        if self.closed:
            future.set_exception(ConnectionError(f"{self.name} is closed"))
            return
        pdu = receipt_pdu(receipt)
        pdu.sequence_number = sequence
        self.send(pdu)

    # --- ending ---

    async def unbind(self) -> None:
        """Ask the client to unbind (server stopping); close whatever it answers.

        Submits already taken are answered first; new ones get ESME_RINVBNDSTS meanwhile.
        """
        self.can_submit = False
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.options.response_timeout * 3)
        if self.client is not None and not self.closed:
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(self.request(Unbind()), 2.0)
        self.closed = True
        if not self.writer.transport.is_closing():
            self.writer.transport.abort()

    async def _close(self) -> None:
        self.server.unregister(self)  # no receipt is offered to it any more
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))
        if self._tasks:  # answers of accepted submits are still owed; wait for the commit
            await asyncio.wait(list(self._tasks), timeout=self.options.response_timeout * 3)
        self.closed = True
        self._assemblies.clear()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def submit_times(pdu: SubmitSm | DataSm, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(send_at, expires_at) from schedule_delivery_time and validity_period; None: not given.

    A schedule in the past means now. A validity that ends before the message may go is
    refused (ESME_RINVEXPIRY); one longer than MAX_VALIDITY is cut to it. data_sm has neither.
    """
    if isinstance(pdu, DataSm):
        return None, None
    try:
        send_at = parse_smpp_time(pdu.schedule_delivery_time, now)
    except SmppTimeError as error:
        raise BadTime(str(error), CommandStatus.ESME_RINVSCHED) from None
    try:
        expires_at = parse_smpp_time(pdu.validity_period, now)
    except SmppTimeError as error:
        raise BadTime(str(error), CommandStatus.ESME_RINVEXPIRY) from None
    if send_at is not None and send_at <= now:
        send_at = None
    if expires_at is None:
        return send_at, None
    start = send_at or now
    if expires_at <= start:
        raise BadTime(
            "validity_period ends before the message can be sent", CommandStatus.ESME_RINVEXPIRY
        )
    return send_at, min(expires_at, start + MAX_VALIDITY)


def _no_answer(future: asyncio.Future[Pdu]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no deliver_sm_resp in time"))


def _status_of(error: TidingsError) -> int:
    """The closest command_status for a refusal of the acceptance pipeline."""
    if isinstance(error, BadTime):
        return error.status
    if isinstance(error, InvalidRequest):
        if error.reason == "bad_msisdn":
            return CommandStatus.ESME_RINVDSTADR
        if error.reason == "body_too_long":
            return CommandStatus.ESME_RINVMSGLEN
        if error.reason == "bad_originator":
            return CommandStatus.ESME_RINVSRCADR
        return CommandStatus.ESME_RSUBMITFAIL
    if isinstance(error, PricingError | RoutingError):
        return CommandStatus.ESME_RINVDSTADR
    if isinstance(error, InsufficientFunds):
        return CommandStatus.ESME_RSUBMITFAIL
    return CommandStatus.ESME_RSUBMITFAIL


class SmppServer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        catalog: CatalogCache,
        accepts: AcceptQueue,
        limits: Limits,
        options: ServerOptions,
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
        self._server: asyncio.Server | None = None
        self._connections: set[ServerConnection] = set()
        self._binds: dict[int, list[ServerConnection]] = {}
        self._buckets: dict[int, TokenBucket] = {}
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._receipts: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
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
            client.id, system_id, caller, client.smpp_max_binds, bucket
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

    async def accept(self, client: BoundClient, pdu: SubmitSm | DataSm, body: str) -> int:
        """Price, route, charge and store one message as the REST API does; its id."""
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
            after_write=None if wanted == 1 else remember,
        )
        prepared = prepare_sms(await self.catalog.get(), client.caller, request, self.limits)
        acceptance = await self.accepts.submit(prepared)
        return acceptance.items[0].id

    async def cancel(self, client_id: int, message_id: int) -> bool:
        """Cancel a message of this client not yet handed to a supplier (refunded)."""
        async with transaction(self.sessions) as session:
            return await cancel_unsent(
                session, self.clock, message_id, client_id, "cancelled by cancel_sm"
            )

    async def query(self, client_id: int, message_id: int) -> tuple[str, datetime | None] | None:
        async with transaction(self.sessions) as session:
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
        for connection in list(self._connections):
            connection.expire_parts()


async def serve_smpp(settings: Settings, stop: asyncio.Event, clock: Clock) -> None:
    """``tidings smpp``: only the SMPP server (with its own accept queue) until ``stop``."""
    from tidings.db.engine import create_engine, create_sessionmaker

    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
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
        await engine.dispose()
