"""One ESME bind to an SMSC, kept up on asyncio: connect, bind, keep alive, reconnect.

:class:`EsmeSession` owns one bind slot. Its ``run`` task connects (TCP or TLS), binds, serves
the connection until it ends, and reconnects with exponential back-off (``reconnect_delay``
doubling to ``reconnect_max``, reset by a successful bind) until :meth:`stop`. Each TCP
connection is a :class:`Link`; a Link has at most ``window`` submit_sm outstanding (the
connector hands out window slots per link), a pace of ``throughput`` submit_sm per second,
and a pause after ESME_RTHROTTLED / ESME_RMSGQFUL that doubles while the SMSC keeps saying so.

Requests time out after ``response_timeout``; a timed-out request means the link is stale and
it is dropped. Whatever was written and not answered when a link ends fails with
:class:`Unacknowledged` (the SMSC may or may not have it); what was never written fails
with :class:`NotBound`. The SMSC's enquire_link and unbind are answered; anything unknown
gets a generic_nack. deliver_sm / data_sm go to a handler whose answer (a command_status) is
sent as the response only once the handler has returned, so what we did not store is
delivered again. :meth:`stop` unbinds cleanly, waiting ``unbind_timeout`` at most for
unbind_resp (some SMSCs close first).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tidings.connectors.smpp.pdu import (
    HEADER,
    MAX_PDU_LENGTH,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    BodyError,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    DecodeError,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode,
    encode,
    is_response,
    status_name,
)

__all__ = [
    "BindFailed",
    "BindMode",
    "EsmeSession",
    "Link",
    "NotBound",
    "SessionConfig",
    "SessionError",
    "Unacknowledged",
]

log = logging.getLogger("tidings.smpp")

MAX_SEQUENCE = 0x7FFFFFFF


class BindMode(StrEnum):
    TRANSCEIVER = "transceiver"
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"

    @property
    def transmits(self) -> bool:
        return self is not BindMode.RECEIVER


_BIND_PDU: dict[BindMode, type[BindTransmitter | BindReceiver | BindTransceiver]] = {
    BindMode.TRANSCEIVER: BindTransceiver,
    BindMode.TRANSMITTER: BindTransmitter,
    BindMode.RECEIVER: BindReceiver,
}


class SessionError(Exception):
    pass


class NotBound(SessionError):
    """The request was never written: safe to send again anywhere."""


class Unacknowledged(SessionError):
    """The request was written and the link ended (or went stale) before its response."""


class BindFailed(SessionError):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {status_name(status)}")
        self.status = status


@dataclass(frozen=True, slots=True)
class SessionConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    mode: BindMode = BindMode.TRANSCEIVER
    window: int = 10
    throughput: float = 0.0  # submit_sm per second on this bind; 0: no limit
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    interface_version: int = 0x34
    tls: ssl.SSLContext | None = None
    connect_timeout: float = 10.0
    response_timeout: float = 10.0
    enquire_link_interval: float = 30.0
    reconnect_delay: float = 0.5
    reconnect_max: float = 30.0
    unbind_timeout: float = 2.0
    throttle_pause: float = 0.5  # first pause after ESME_RTHROTTLED / ESME_RMSGQFUL
    throttle_pause_max: float = 8.0


DeliverHandler = Callable[["Link", DeliverSm | DataSm], Awaitable[int]]
"""Handles an SMSC's deliver_sm/data_sm; its result is the command_status to answer with.

A handler may return an ``asyncio.Future`` (no task is made for it then: the cheap path for
thousands of receipts a second) or any other awaitable (run as a task).
"""

LinkListener = Callable[["Link"], None]


async def _awaited(answer: Awaitable[int]) -> int:
    return await answer


class Link:
    """One bound TCP connection to the SMSC."""

    def __init__(
        self,
        session: EsmeSession,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self.session = session
        self.config = session.config
        self.reader = reader
        self.writer = writer
        self.number = number  # this session's nth connection, for logs
        self.bound = False
        self.closed = asyncio.Event()
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._written: set[int] = set()
        self._handlers: set[asyncio.Future[Any]] = set()
        self._out: list[bytes] = []
        self._flush_soon = False
        self._loop = asyncio.get_running_loop()
        self._sequence = 0
        self._next_send = 0.0
        self._paused_until = 0.0
        self._throttled_in_a_row = 0
        self.submitted = 0
        self.throttled = 0

    @property
    def name(self) -> str:
        return f"{self.session.name}#{self.number}"

    @property
    def usable(self) -> bool:
        return self.bound and not self.closed.is_set()

    def next_sequence(self) -> int:
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        return self._sequence

    # --- sending ---

    def send(self, pdu: Pdu) -> None:
        """Write a PDU that expects no answer (responses, generic_nack)."""
        if not self.closed.is_set():
            self._write(encode(pdu))

    def _write(self, data: bytes) -> None:
        """Queue bytes; everything queued in one turn of the loop goes in one write."""
        self._out.append(data)
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        out, self._out = self._out, []
        if out and not self.writer.transport.is_closing():
            self.writer.write(b"".join(out))

    async def request(self, pdu: Pdu, wait: float | None = None) -> Pdu:
        """Send a request and wait for its response (which may be a generic_nack).

        Raises NotBound when the link is down before writing, Unacknowledged when it goes
        down (or the response does not come within the timeout) after.
        """
        if self.closed.is_set():
            raise NotBound(f"{self.name} is closed")
        sequence = pdu.sequence_number = self.next_sequence()
        data = encode(pdu)
        future: asyncio.Future[Pdu] = self._loop.create_future()
        self._pending[sequence] = future
        self._write(data)
        timer = self._loop.call_later(
            wait or self.config.response_timeout, self._expire, sequence, pdu.name
        )
        try:
            if self.writer.transport.get_write_buffer_size() > 256 * 1024:
                try:
                    await self.writer.drain()
                except (ConnectionError, OSError) as error:
                    self.abort()
                    raise Unacknowledged(f"{self.name}: {error}") from None
            return await future
        finally:
            timer.cancel()
            self._pending.pop(sequence, None)

    def _expire(self, sequence: int, name: str) -> None:
        future = self._pending.get(sequence)
        if future is not None and not future.done():
            log.warning("%s: no answer to %s in time, dropping the link", self.name, name)
            future.set_exception(Unacknowledged(f"no answer to {name} from {self.name}"))
            self.abort()

    async def submit(self, pdu: SubmitSm) -> Pdu:
        """A submit_sm at this bind's pace (throughput and throttling pauses)."""
        await self._pace()
        if not self.usable:
            raise NotBound(f"{self.name} went down")
        self.submitted += 1
        response = await self.request(pdu)
        if response.command_status in (
            CommandStatus.ESME_RTHROTTLED,
            CommandStatus.ESME_RMSGQFUL,
        ):
            self.slow_down()
        elif response.command_status == CommandStatus.ESME_ROK:
            self._throttled_in_a_row = 0
        return response

    def slow_down(self) -> float:
        """Pause this bind's submits; each throttle in a row doubles the pause."""
        self.throttled += 1
        self._throttled_in_a_row += 1
        pause = min(
            self.config.throttle_pause * 2.0 ** (self._throttled_in_a_row - 1),
            self.config.throttle_pause_max,
        )
        self._paused_until = max(self._paused_until, time.monotonic() + pause)
        return pause

    @property
    def pause_left(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def _pace(self) -> None:
        now = time.monotonic()
        at = max(now, self._paused_until)
        if self.config.throughput > 0:
            at = max(at, self._next_send)
            self._next_send = at + 1.0 / self.config.throughput
        if at > now:
            await asyncio.sleep(at - now)
            # A throttle answer to another submit may have paused the bind meanwhile.
            left = self._paused_until - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)

    # --- receiving ---

    async def read_loop(self, handler: DeliverHandler) -> None:
        """Read PDUs until the connection ends."""
        reader = self.reader
        while True:
            head = await reader.readexactly(4)
            length = int.from_bytes(head, "big")
            if not HEADER.size <= length <= MAX_PDU_LENGTH:
                log.warning("%s: command_length %d, closing", self.name, length)
                self.send(GenericNack(0, CommandStatus.ESME_RINVCMDLEN))
                return
            data = head + await reader.readexactly(length - 4)
            try:
                pdu = decode(data)
            except BodyError as error:
                self._bad_pdu(error)
                continue
            except DecodeError as error:  # pragma: no cover - the length was checked
                log.warning("%s: %s", self.name, error)
                return
            if is_response(pdu.command_id):
                self._answer(pdu)
            elif not self._request(pdu, handler):
                return

    def _bad_pdu(self, error: BodyError) -> None:
        log.warning("%s: undecodable PDU: %s", self.name, error)
        if is_response(error.command_id):
            future = self._pending.get(error.sequence_number)
            if future is not None and not future.done():
                future.set_result(GenericNack(error.sequence_number, error.status))
        else:
            self.send(GenericNack(error.sequence_number, error.status))

    def _answer(self, pdu: Pdu) -> None:
        future = self._pending.get(pdu.sequence_number)
        if future is not None and not future.done():
            future.set_result(pdu)
        elif pdu.command_id == CommandId.GENERIC_NACK:
            log.warning(
                "%s: generic_nack %s for sequence %d",
                self.name,
                status_name(pdu.command_status),
                pdu.sequence_number,
            )

    def _request(self, pdu: Pdu, handler: DeliverHandler) -> bool:
        """Handle a request of the SMSC; False when the link is to end."""
        if isinstance(pdu, EnquireLink):
            self.send(EnquireLinkResp(pdu.sequence_number))
        elif isinstance(pdu, DeliverSm | DataSm):
            answer = handler(self, pdu)
            future: asyncio.Future[Any] = (
                answer
                if isinstance(answer, asyncio.Future)
                else self._loop.create_task(_awaited(answer))
            )
            self._handlers.add(future)
            future.add_done_callback(functools.partial(self._respond, pdu))
        elif isinstance(pdu, Unbind):
            log.info("%s: the SMSC unbinds", self.name)
            self.bound = False
            self.send(UnbindResp(pdu.sequence_number))
            return False
        elif pdu.command_id == CommandId.ALERT_NOTIFICATION:
            pass  # takes no response
        else:
            status = (
                CommandStatus.ESME_RINVCMDID
                if isinstance(pdu, UnknownPdu)
                else CommandStatus.ESME_RINVBNDSTS
            )
            self.send(GenericNack(pdu.sequence_number, status))
        return True

    def _respond(self, pdu: DeliverSm | DataSm, answer: asyncio.Future[Any]) -> None:
        """Answer a deliver_sm once its handler is done (nothing when it was cancelled)."""
        self._handlers.discard(answer)
        if answer.cancelled():
            return
        error = answer.exception()
        if error is not None:
            log.warning("%s: deliver_sm not taken: %s", self.name, error)
            status = int(CommandStatus.ESME_RX_T_APPN)
        else:
            status = int(answer.result())
        response: Pdu
        if isinstance(pdu, DataSm):
            response = DataSmResp(pdu.sequence_number, status)
        else:
            response = DeliverSmResp(pdu.sequence_number, status)
        self.send(response)

    async def keep_alive(self) -> None:
        interval = self.config.enquire_link_interval
        while not self.closed.is_set():
            await asyncio.sleep(interval)
            try:
                await self.request(EnquireLink())
            except SessionError:
                return

    async def wait_handlers(self, grace: float) -> None:
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=grace)

    # --- ending ---

    def abort(self) -> None:
        """Drop the connection now (no unbind)."""
        self.bound = False
        if not self.writer.transport.is_closing():
            self.writer.transport.abort()

    def fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(Unacknowledged(f"{self.name} ended before the answer"))
        self._pending.clear()

    async def unbind(self) -> None:
        if not self.usable:
            return
        try:
            await self.request(Unbind(), self.config.unbind_timeout)
        except (SessionError, ConnectionError, OSError):
            pass  # the SMSC closed first or never answered: we are leaving anyway
        finally:
            self.bound = False


class EsmeSession:
    """A bind slot: keeps one link to the SMSC up until stopped."""

    def __init__(
        self,
        config: SessionConfig,
        handler: DeliverHandler,
        *,
        name: str = "smpp",
        on_bound: LinkListener | None = None,
        on_lost: LinkListener | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.name = name
        self.on_bound = on_bound
        self.on_lost = on_lost
        self.link: Link | None = None
        self.binds = 0  # successful binds so far
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._bound = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def wait_bound(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bound.wait(), within)
        return self._bound.is_set()

    async def stop(self, grace: float = 5.0) -> None:
        """Let delivered receipts finish, unbind, close."""
        self._stopping.set()
        link = self.link
        if link is not None and link.usable:
            await link.wait_handlers(grace)
            await link.unbind()
            link.abort()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.config.unbind_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def _run(self) -> None:
        delay = self.config.reconnect_delay
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            try:
                bound = await self._connect_and_serve(attempt)
            except asyncio.CancelledError:
                raise
            except BindFailed as error:
                self.last_error = str(error)
                log.error("%s: %s", self.name, error)
                bound = False
            except (OSError, TimeoutError, asyncio.IncompleteReadError, SessionError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("%s: connection failed: %s", self.name, self.last_error)
                bound = False
            if bound:
                delay = self.config.reconnect_delay
            if self._stopping.is_set():
                return
            pause = delay * (1 + random.random() / 10)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            delay = min(delay * 2, self.config.reconnect_max)

    async def _connect_and_serve(self, attempt: int) -> bool:
        config = self.config
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                config.host,
                config.port,
                ssl=config.tls,
                server_hostname=config.host if config.tls else None,
                limit=MAX_PDU_LENGTH * 2,
            ),
            config.connect_timeout,
        )
        link = Link(self, reader, writer, attempt)
        reading = asyncio.get_running_loop().create_task(
            link.read_loop(self.handler), name=f"{link.name}-read"
        )
        keep_alive: asyncio.Task[None] | None = None
        bound = False
        try:
            bind = _BIND_PDU[config.mode](
                system_id=config.system_id,
                password=config.password,
                system_type=config.system_type,
                interface_version=config.interface_version,
                addr_ton=config.addr_ton,
                addr_npi=config.addr_npi,
                address_range=config.address_range,
            )
            self.link = link
            response = await self._bind(link, bind, reading)
            if response.command_status != CommandStatus.ESME_ROK:
                raise BindFailed(response.command_status)
            if self._stopping.is_set():
                await link.unbind()
                return True
            link.bound = bound = True
            self.binds += 1
            self.last_error = None
            self._bound.set()
            log.info("%s: bound as %s", link.name, config.mode.value)
            keep_alive = asyncio.get_running_loop().create_task(
                link.keep_alive(), name=f"{link.name}-keepalive"
            )
            if self.on_bound is not None:
                self.on_bound(link)
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
                await reading
            return True
        finally:
            link.bound = False
            self._bound.clear()
            link.closed.set()
            link.fail_pending()
            if bound and self.on_lost is not None:
                self.on_lost(link)
            for task in (reading, keep_alive):
                if task is not None and not task.done():
                    task.cancel()
            for task in (reading, keep_alive):
                if task is not None:
                    with contextlib.suppress(
                        asyncio.CancelledError,
                        asyncio.IncompleteReadError,
                        ConnectionError,
                        OSError,
                    ):
                        await task
            # Handlers still storing receipts can no longer answer: the SMSC sends them again.
            for handler in list(link._handlers):
                handler.cancel()
            link._handlers.clear()
            link._flush()  # an unbind_resp still queued goes out before the close
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            link.abort()
            if bound:
                log.info("%s: link closed", link.name)

    async def _bind(self, link: Link, bind: Pdu, reading: asyncio.Task[None]) -> Pdu:
        answer = asyncio.ensure_future(link.request(bind, self.config.connect_timeout))
        done, _ = await asyncio.wait({answer, reading}, return_when=asyncio.FIRST_COMPLETED)
        if answer in done:
            return answer.result()
        answer.cancel()
        with contextlib.suppress(asyncio.CancelledError, SessionError):
            await answer
        reading.result()  # raises what ended the connection
        raise Unacknowledged("connection closed during bind")
