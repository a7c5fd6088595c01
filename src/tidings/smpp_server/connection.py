"""One ESME connected to the SMPP server: binds, submits (reassembling long ones), queries,
cancels, and the receipts the server's ReceiptSender hands it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

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
from tidings.connectors.smpp.text import (
    TextCharset,
    TextRefused,
    check_part,
    join_text,
    read_part,
)
from tidings.connectors.smpp.tlv import Tag, int_value
from tidings.errors import (
    TidingsError,
)
from tidings.smpp_server.receipts import (
    Answered,
    deliver_pdu,
    message_state_of,
    smpp_time,
)
from tidings.smpp_server.store import PendingReceipt
from tidings.smpp_server.submits import status_of

if TYPE_CHECKING:
    from tidings.messages.acceptance import Acceptance
    from tidings.smpp_server.server import BoundClient, SmppServer

log = logging.getLogger("tidings.smpp.server")

SYSTEM_ID = "Tidings"
MAX_SEQUENCE = 0x7FFFFFFF


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
        # Submits being accepted (the accept queue's futures) and query/cancel tasks: the
        # window, and what closing waits for.
        self._tasks: set[asyncio.Future[Any]] = set()
        self.receipts_in_flight = 0
        # PDUs encoded but not yet handed to the transport: written together once per loop
        # turn, one write (and send syscall) for a burst of answers and receipts.
        self._outgoing: list[bytes] = []

    @property
    def address(self) -> str:
        """The client's IP address (binds are throttled per address)."""
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if peer else "-"

    @property
    def name(self) -> str:
        system_id = self.client.system_id if self.client else "-"
        return f"smpp-in#{self.number}({system_id})"

    # --- writing ---

    def send(self, pdu: Pdu) -> None:
        if self.closed or self.writer.transport.is_closing():
            return
        data = encode(pdu)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self.flush)
        self._outgoing.append(data)

    def flush(self) -> None:
        """Hand what send() queued to the transport (in order); also before closing."""
        if not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if not self.writer.transport.is_closing():
            self.writer.write(data)

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
        # Whatever the socket has is read at once and split into PDUs here: one read (and one
        # timeout) per burst rather than two per PDU. Silence between PDUs may last
        # ``inactivity``; the rest of a PDU begun must come within ``response_timeout``.
        buffer = bytearray()
        while not self.closed:
            timeout = self.options.response_timeout if buffer else self.options.inactivity
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(buffer), None)
            buffer += chunk
            while len(buffer) >= 4 and not self.closed:
                length = int.from_bytes(buffer[:4], "big")
                if not HEADER.size <= length <= MAX_PDU_LENGTH:
                    log.warning("%s: command_length %d, closing", self.name, length)
                    self.send(GenericNack(0, CommandStatus.ESME_RINVCMDLEN))
                    return
                if len(buffer) < length:
                    break
                data = bytes(buffer[:length])
                del buffer[:length]
                if not await self._handle(data):
                    return

    async def _handle(self, data: bytes) -> bool:
        """One whole PDU read; False when the connection is to end."""
        try:
            pdu = decode(data)
        except BodyError as error:
            self.send(GenericNack(error.sequence_number, error.status))
            return True
        except DecodeError:  # pragma: no cover - the length was checked
            return False
        if is_response(pdu.command_id):
            future = self._pending.get(pdu.sequence_number)
            if future is not None and not future.done():
                future.set_result(pdu)
            return True
        return await self._request(pdu)

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
        status, client = await self.server.binds.attempt(
            self.address,
            pdu.system_id,
            functools.partial(self.server.authenticate, pdu.system_id, pdu.password),
        )
        if client is None:
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
        try:
            part = read_part(
                short_message, pdu.data_coding, pdu.esm_class, pdu.tlvs, default=client.charset
            )
            if part.concat is None or part.concat.total <= 1:
                self._accept_now(client, pdu, join_text([part]), [pdu])
                return
            check_part(part)
        except TextRefused as error:
            log.info("%s: text refused: %s", self.name, error)
            self.send(respond(pdu.sequence_number, CommandStatus.ESME_RINVDCS))
            return
        self.server.assembler.add(
            client,
            pdu,
            part,
            functools.partial(self._answer_one, pdu),
            self.server.accept_nowait,
        )

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept_now(
        self, client: BoundClient, pdu: SubmitSm | DataSm, body: str, answer: Sequence[Pdu]
    ) -> None:
        """Queue the message for the next commit and answer when it lands: no task per
        submit_sm (thousands a second)."""
        try:
            accepting = self.server.accept_nowait(client, pdu, body)
        except Exception as error:
            self._refused(answer, error)
            return
        self._tasks.add(accepting)
        accepting.add_done_callback(functools.partial(self._accepted, answer))

    def _accepted(self, answer: Sequence[Pdu], accepting: asyncio.Future[Acceptance]) -> None:
        self._tasks.discard(accepting)
        if accepting.cancelled():
            self._answer(answer, CommandStatus.ESME_RSYSERR, "")
        elif (error := accepting.exception()) is not None:
            self._refused(answer, error)
        else:
            self._answer(answer, CommandStatus.ESME_ROK, str(accepting.result().items[0].id))

    def _refused(self, answer: Sequence[Pdu], error: BaseException) -> None:
        if isinstance(error, TidingsError):
            self._answer(answer, status_of(error), "")
        else:
            log.error("%s: submit failed", self.name, exc_info=error)
            self._answer(answer, CommandStatus.ESME_RSYSERR, "")

    async def _query(self, pdu: QuerySm) -> None:
        """query_sm: the state of one of this client's messages (ESME_RQUERYFAIL if none)."""
        found = None
        wanted = pdu.message_id.strip()
        if self.client is not None and wanted:
            try:
                found = await self.server.query(
                    self.client.client_id, int(wanted) if wanted.isdigit() else wanted
                )
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

    def _answer_one(self, pdu: Pdu, status: int, message_id: str) -> None:
        self._answer([pdu], status, message_id)

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
        pdu = deliver_pdu(receipt, self.client.charset if self.client else TextCharset.GSM7)
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
        self.flush()
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
        self.flush()
        self.closed = True
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def _no_answer(future: asyncio.Future[Pdu]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no deliver_sm_resp in time"))
