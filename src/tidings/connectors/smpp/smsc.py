"""A small SMSC on asyncio for tests, benchmarks and demos, with faults on demand.

It authenticates binds, answers submit_sm with ids in a chosen style, and sends a delivery
receipt for each accepted submit_sm (text form and/or TLVs) to a receiving bind of the same
system_id, sending again what is not acknowledged with ESME_ROK — as a store-and-forward
SMSC does. Faults: throttling (every nth submit, or the first n), rejection by destination,
dropping the connection after n submits (the last one unanswered), receipts delayed or sent
before the submit_sm_resp, a crash (``crash()``: every connection cut, pending receipts
kept as a persistent store would) and a restart (``start()`` again on the same port). With
``journal`` (``--journal FILE``) ids and unacknowledged receipts survive a kill -9 too.

    python -m tidings.connectors.smpp.smsc --port 2775 --system-id tidings --password secret

prints ``listening on 127.0.0.1:PORT`` and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import ssl
import sys
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

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
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode,
    encode,
    is_response,
)
from tidings.connectors.smpp.receipts import STAT_TEXT, MessageState, format_receipt_text
from tidings.connectors.smpp.text import Concat, DecodedText, decode_short_message
from tidings.connectors.smpp.tlv import Tag, c_string, get_str, int_value

__all__ = ["Smsc", "SmscConfig", "Submitted"]

_BIND_RESP: dict[type[Pdu], type[BindResp]] = {
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp,
}


@dataclass
class SmscConfig:
    host: str = "127.0.0.1"
    port: int = 0
    system_id: str = "tidings"
    password: str | None = "secret"  # None: any password
    id_style: str = "hex"  # hex | HEX0 (upper-case, zero-padded) | dec | dec0 (zero-padded)
    receipt_id_style: str | None = None  # how receipts write the id; None: as in the resp
    receipt_state: MessageState = MessageState.DELIVERED
    receipt_text: bool = True
    receipt_tlvs: bool = True
    receipt_delay: float = 0.0
    receipt_before_resp: bool = False
    receipt_window: int = 50  # unacknowledged deliver_sm per bind
    redeliver_delay: float = 0.2  # before a receipt refused with an error goes again
    receipts: bool = True
    throttle_every: int = 0  # every nth submit_sm gets ESME_RTHROTTLED
    throttle_first: int = 0  # the first n submit_sm get ESME_RTHROTTLED
    reject: dict[str, int] = field(default_factory=dict)  # destination -> command_status
    # destination -> seconds before its submit_sm_resp goes (others are answered meanwhile)
    answer_delay: dict[str, float] = field(default_factory=dict)
    drop_after: int = 0  # cut the connection on the nth submit_sm, unanswered (once)
    tls: ssl.SSLContext | None = None  # a server context: SMPP over TLS
    journal: str | None = None  # a file keeping ids and unacknowledged receipts across kill -9


@dataclass(frozen=True, slots=True)
class Submitted:
    """A submit_sm this SMSC accepted."""

    message_id: str
    system_id: str
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    text: DecodedText
    pdu: SubmitSm

    @property
    def concat(self) -> Concat | None:
        return self.text.concat


class _Esme:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.system_id = ""
        self.mode: type[Pdu] | None = None
        self.sequence = itertools.count(1)
        self.in_flight: dict[int, tuple[DeliverSm, asyncio.Future[int]]] = {}
        self.window = asyncio.Semaphore(1)

    @property
    def receives(self) -> bool:
        return self.mode in (BindReceiver, BindTransceiver)

    def send(self, pdu: Pdu) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(encode(pdu))


class Smsc:
    def __init__(self, config: SmscConfig | None = None) -> None:
        self.config = config or SmscConfig()
        self.port = self.config.port
        self.submitted: list[Submitted] = []
        self.binds = 0
        self.bind_refusals = 0
        self.throttled = 0
        self.receipts_acked = 0
        self.receipts_sent = 0
        self.unbinds = 0
        self._ids = itertools.count(1)
        self._submits = 0
        self._dropped = False
        self._server: asyncio.Server | None = None
        self._esmes: set[_Esme] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[asyncio.Task[None]] = set()
        self._outbox: deque[DeliverSm] = deque()
        self._journal: IO[str] | None = None
        self._outbox_ready = asyncio.Event()

    # --- life cycle ---

    async def start(self) -> Smsc:
        if self.config.journal and self._journal is None:
            self._load_journal(Path(self.config.journal))
        self._outbox_ready = asyncio.Event()
        if self._outbox:
            self._outbox_ready.set()
        self._server = await asyncio.start_server(
            self._serve, self.config.host, self.port, ssl=self.config.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def crash(self) -> None:
        """Stop at once: every connection cut, nothing answered; queued receipts are kept."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for esme in list(self._esmes):
            esme.writer.transport.abort()
        # Connections end by themselves once cut (cancelling them upsets asyncio.streams).
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2)
        await self._cancel_tasks()

    async def stop(self) -> None:
        """Unbind every ESME politely, then stop."""
        for esme in list(self._esmes):
            esme.send(Unbind(next(esme.sequence)))
        await asyncio.sleep(0.05)
        await self.crash()
        self._close_journal()

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    async def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def __aenter__(self) -> Smsc:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.crash()
        self._close_journal()

    def _spawn(self, coroutine: object) -> None:
        assert asyncio.iscoroutine(coroutine)
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending_receipts(self) -> int:
        return len(self._outbox) + sum(len(e.in_flight) for e in self._esmes)

    # --- the journal: what a real SMSC keeps on disk ---

    def _load_journal(self, path: Path) -> None:
        pending: dict[str, DeliverSm] = {}
        last = 0
        if path.exists():
            for line in path.read_text().splitlines():
                kind, _, rest = line.partition("\t")
                if kind == "S":
                    number, key, wire = rest.split("\t")
                    last = max(last, int(number))
                    receipt = decode(bytes.fromhex(wire))
                    assert isinstance(receipt, DeliverSm)
                    pending[key] = receipt
                elif kind == "A":
                    pending.pop(rest, None)
        self._ids = itertools.count(last + 1)
        self._outbox.extend(pending.values())
        self._journal = path.open("a", encoding="ascii")

    def _write_journal(self, *fields: object) -> None:
        if self._journal is not None:
            self._journal.write("\t".join(map(str, fields)) + "\n")
            self._journal.flush()  # in the page cache: a kill -9 of this process keeps it

    @staticmethod
    def _key(receipt: DeliverSm) -> str:
        return get_str(receipt.tlvs, Tag.RECEIPTED_MESSAGE_ID) or receipt.short_message.hex()

    # --- ids ---

    def _new_id(self) -> tuple[int, str]:
        number = next(self._ids)
        return number, _write_id(number + 0x10000, self.config.id_style)  # hex with letters

    # --- connections ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        esme = _Esme(writer)
        esme.window = asyncio.Semaphore(self.config.receipt_window)
        self._esmes.add(esme)
        sender: asyncio.Task[None] | None = None
        try:
            while True:
                head = await reader.readexactly(4)
                length = int.from_bytes(head, "big")
                if not HEADER.size <= length <= MAX_PDU_LENGTH:
                    return
                data = head + await reader.readexactly(length - 4)
                try:
                    pdu = decode(data)
                except BodyError as error:
                    esme.send(GenericNack(error.sequence_number, error.status))
                    continue
                if is_response(pdu.command_id):
                    self._response(esme, pdu)
                    continue
                if type(pdu) in _BIND_RESP:
                    if self._bind(esme, pdu) and esme.receives and sender is None:
                        sender = asyncio.get_running_loop().create_task(self._send_receipts(esme))
                elif esme.mode is None:
                    esme.send(GenericNack(pdu.sequence_number, CommandStatus.ESME_RINVBNDSTS))
                elif isinstance(pdu, EnquireLink):
                    esme.send(EnquireLinkResp(pdu.sequence_number))
                elif isinstance(pdu, Unbind):
                    self.unbinds += 1
                    esme.send(UnbindResp(pdu.sequence_number))
                    await writer.drain()
                    return
                elif isinstance(pdu, SubmitSm):
                    if not await self._submit(esme, pdu):
                        return
                elif isinstance(pdu, DataSm):
                    esme.send(DataSmResp(pdu.sequence_number, CommandStatus.ESME_RINVCMDID))
                else:
                    esme.send(GenericNack(pdu.sequence_number, CommandStatus.ESME_RINVCMDID))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._esmes.discard(esme)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            # What this ESME did not acknowledge goes out again, first in line.
            for pdu, future in reversed(list(esme.in_flight.values())):
                self._outbox.appendleft(pdu)
                if not future.done():
                    future.cancel()
            if self._outbox:
                self._outbox_ready.set()
            writer.transport.abort()
            self._connections.discard(task)

    def _bind(self, esme: _Esme, pdu: Pdu) -> bool:
        assert isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver)
        response = _BIND_RESP[type(pdu)]
        password = self.config.password
        if esme.mode is not None:
            status = CommandStatus.ESME_RALYBND
        elif pdu.system_id != self.config.system_id:
            status = CommandStatus.ESME_RINVSYSID
        elif password is not None and pdu.password != password:
            status = CommandStatus.ESME_RINVPASWD
        else:
            status = CommandStatus.ESME_ROK
        if status != CommandStatus.ESME_ROK:
            self.bind_refusals += 1
            esme.send(response(pdu.sequence_number, status))
            return False
        esme.mode = type(pdu)
        esme.system_id = pdu.system_id
        self.binds += 1
        esme.send(
            response(pdu.sequence_number, 0, {Tag.SC_INTERFACE_VERSION: b"\x34"}, system_id="SMSC")
        )
        return True

    async def _submit(self, esme: _Esme, pdu: SubmitSm) -> bool:
        config = self.config
        self._submits += 1
        if esme.mode is BindReceiver:
            esme.send(SubmitSmResp(pdu.sequence_number, CommandStatus.ESME_RINVBNDSTS))
            return True
        if config.drop_after and self._submits >= config.drop_after and not self._dropped:
            self._dropped = True
            esme.writer.transport.abort()
            return False
        throttle = (config.throttle_every and self._submits % config.throttle_every == 0) or (
            self._submits <= config.throttle_first
        )
        if throttle:
            self.throttled += 1
            esme.send(SubmitSmResp(pdu.sequence_number, CommandStatus.ESME_RTHROTTLED))
            return True
        status = config.reject.get(pdu.destination_addr)
        if status is not None:
            esme.send(SubmitSmResp(pdu.sequence_number, status))
            return True
        number, message_id = self._new_id()
        text = decode_short_message(pdu.short_message, pdu.data_coding, pdu.esm_class, pdu.tlvs)
        self.submitted.append(
            Submitted(
                message_id,
                esme.system_id,
                pdu.source_addr,
                pdu.destination_addr,
                pdu.data_coding,
                pdu.esm_class,
                text,
                pdu,
            )
        )
        receipt = self._receipt(number, message_id, pdu) if config.receipts else None
        if receipt is not None and self._journal is not None:
            self._write_journal("S", number, self._key(receipt), encode(receipt).hex())
        if receipt is not None and config.receipt_before_resp:
            self._queue(receipt)
            await asyncio.sleep(0.01)
        slow = config.answer_delay.get(pdu.destination_addr)
        if slow:
            self._spawn(self._answer_later(esme, pdu, message_id, receipt, slow))
            return True
        esme.send(SubmitSmResp(pdu.sequence_number, 0, {}, message_id))
        if receipt is not None and not config.receipt_before_resp:
            if config.receipt_delay:
                self._spawn(self._queue_later(receipt, config.receipt_delay))
            else:
                self._queue(receipt)
        return True

    async def _answer_later(
        self, esme: _Esme, pdu: SubmitSm, message_id: str, receipt: DeliverSm | None, delay: float
    ) -> None:
        await asyncio.sleep(delay)
        esme.send(SubmitSmResp(pdu.sequence_number, 0, {}, message_id))
        if receipt is not None:
            self._queue(receipt)

    def _receipt(self, number: int, message_id: str, pdu: SubmitSm) -> DeliverSm:
        config = self.config
        written = (
            _write_id(number + 0x10000, config.receipt_id_style)
            if config.receipt_id_style
            else None
        )
        receipt_id = written or message_id
        state = config.receipt_state
        now = datetime.now(UTC).strftime("%y%m%d%H%M")
        tlvs: dict[int, bytes] = {}
        if config.receipt_tlvs:
            tlvs[Tag.RECEIPTED_MESSAGE_ID] = c_string(receipt_id)
            tlvs[Tag.MESSAGE_STATE] = int_value(state, 1)
        text = b""
        if config.receipt_text:
            err = "000" if state == MessageState.DELIVERED else "001"
            text = format_receipt_text(
                receipt_id, STAT_TEXT[state], err=err, submit_date=now, done_date=now
            ).encode("ascii")
        return DeliverSm(
            source_addr=pdu.destination_addr,
            dest_addr_ton=pdu.source_addr_ton,
            dest_addr_npi=pdu.source_addr_npi,
            destination_addr=pdu.source_addr,
            esm_class=0x04,
            short_message=text,
            tlvs=tlvs,
        )

    def send_mo(self, source_addr: str, destination_addr: str, text: bytes) -> None:
        """Queue a mobile-originated deliver_sm (no receipt bit) for the receiving binds."""
        self._queue(
            DeliverSm(
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=source_addr,
                dest_addr_ton=5,
                destination_addr=destination_addr,
                short_message=text,
            )
        )

    def _queue(self, receipt: DeliverSm) -> None:
        self._outbox.append(receipt)
        self._outbox_ready.set()

    async def _queue_later(self, receipt: DeliverSm, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            self._queue(receipt)  # also on a crash: the store is persistent

    async def _send_receipts(self, esme: _Esme) -> None:
        """Send queued receipts to this ESME, at most receipt_window unacknowledged."""
        while True:
            while not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            await esme.window.acquire()
            if not self._outbox:
                esme.window.release()
                continue
            pdu = self._outbox.popleft()
            pdu.sequence_number = next(esme.sequence)
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            esme.in_flight[pdu.sequence_number] = (pdu, future)
            self.receipts_sent += 1
            esme.send(pdu)

    def _response(self, esme: _Esme, pdu: Pdu) -> None:
        entry = esme.in_flight.pop(pdu.sequence_number, None)
        if entry is None:
            return
        receipt, future = entry
        esme.window.release()
        if not future.done():
            future.set_result(pdu.command_status)
        if isinstance(pdu, DeliverSmResp) and pdu.command_status == 0:
            self.receipts_acked += 1
            self._write_journal("A", self._key(receipt))
        else:
            self._spawn(self._queue_later(receipt, self.config.redeliver_delay))


def _write_id(number: int, style: str | None) -> str:
    if style == "dec":
        return str(number)
    if style == "dec0":
        return f"{number:012d}"
    if style == "HEX0":
        return f"{number:010X}"
    return format(number, "x")


async def _main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--system-id", default="tidings")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--id-style", default="hex")
    parser.add_argument("--receipt-id-style", default=None)
    parser.add_argument("--receipt-delay-ms", type=float, default=0.0)
    parser.add_argument("--receipt-window", type=int, default=50)
    parser.add_argument("--throttle-every", type=int, default=0)
    parser.add_argument("--journal", default=None, help="keep ids and receipts in this file")
    args = parser.parse_args(arguments)
    smsc = Smsc(
        SmscConfig(
            host=args.host,
            port=args.port,
            system_id=args.system_id,
            password=args.password,
            id_style=args.id_style,
            receipt_id_style=args.receipt_id_style,
            receipt_delay=args.receipt_delay_ms / 1000,
            receipt_window=args.receipt_window,
            throttle_every=args.throttle_every,
            journal=args.journal,
        )
    )
    await smsc.start()
    print(f"listening on {args.host}:{smsc.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await smsc.stop()
    print(
        f"submitted {len(smsc.submitted)} receipts acked {smsc.receipts_acked}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(_main())
