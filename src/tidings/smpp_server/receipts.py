"""Receipts to SMPP clients: the deliver_sm text, and the loop that offers pending ones.

One :class:`ReceiptSender` per server reads ``smpp_receipts`` (oldest first) and sends each
as a ``deliver_sm`` on a receiver or transceiver bind of its client, at most
``receipt_window`` unanswered per bind, least busy bind first. A receipt is marked sent only
after the client's ``deliver_sm_resp`` ESME_ROK; marking what was answered and reading what
is next share one transaction. Sending costs no task and no ``wait_for`` per receipt: the
answer settles a future whose callback does the bookkeeping (thousands a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.connectors.smpp.pdu import DeliverSm
from tidings.connectors.smpp.receipts import (
    ESM_DELIVERY_RECEIPT,
    STAT_TEXT,
    MessageState,
    format_receipt_text,
)
from tidings.connectors.smpp.smpptime import format_absolute
from tidings.connectors.smpp.text import DataCoding, TextCharset
from tidings.connectors.smpp.tlv import Tag, c_string, int_value
from tidings.db.engine import transaction
from tidings.messages.encoding import (
    UnencodableText,
    encode_gsm7,
    encode_ucs2,
    is_gsm7,
    pack_septets,
)
from tidings.messages.status import Status
from tidings.smpp_server.store import PendingReceipt, mark_sent, pending_receipts
from tidings.wakeups import SMPP_RECEIPTS, wakeups_of

log = logging.getLogger("tidings.smpp.server")

_STATE_OF: dict[str, MessageState] = {
    Status.DELIVERED: MessageState.DELIVERED,
    Status.UNDELIVERED: MessageState.UNDELIVERABLE,
    Status.EXPIRED: MessageState.EXPIRED,
    Status.REJECTED: MessageState.REJECTED,
    Status.FAILED: MessageState.UNDELIVERABLE,
    Status.UNKNOWN: MessageState.UNKNOWN,
    Status.READ: MessageState.DELIVERED,  # Viber's states, should an SMPP message ever get one
    Status.NOT_VIBER_USER: MessageState.UNDELIVERABLE,
}


def message_state_of(status: str) -> MessageState:
    """Our status as an SMPP message_state (query_sm and receipts)."""
    if status in (Status.ACCEPTED, Status.QUEUED, Status.SENT):
        return MessageState.ENROUTE
    if status == Status.SCHEDULED:
        return MessageState.SCHEDULED
    return _STATE_OF.get(status, MessageState.UNKNOWN)


def smpp_time(at: datetime) -> str:
    """An absolute SMPP time (YYMMDDhhmmss000+), UTC (query_sm's final_date)."""
    return format_absolute(at)


def _smpp_date(at: datetime) -> str:
    return at.strftime("%y%m%d%H%M")


def receipt_pdu(receipt: PendingReceipt, charset: TextCharset = TextCharset.GSM7) -> DeliverSm:
    """The deliver_sm receipt: text form plus receipted_message_id / message_state TLVs.

    The id is the one the submit_sm_resp carried (a part's own, for a part that asked). The
    text is written in the client's default alphabet (data_coding 0, as its submits) when
    its ``text:`` (the first 20 characters) fits, else in UCS-2 (data_coding 8): either way
    the characters arrive as they were sent. Every other field is ASCII, the same octets in
    GSM-7, Latin-1 and IA5. A text longer than short_message's 254 octets (UCS-2 with a
    part's 32-character id) goes in message_payload.
    """
    state = message_state_of(receipt.status)
    stat = STAT_TEXT[state]
    message_id = receipt.reply_id or str(receipt.message_id)
    parts = f"{min(receipt.parts, 999):03d}"
    text = format_receipt_text(
        message_id,
        stat,
        err="000" if state is MessageState.DELIVERED else "001",
        sub=parts,
        submit_date=_smpp_date(receipt.time_in),
        done_date=_smpp_date(receipt.done_at),
        text=receipt.body,
    )
    short_message, data_coding = _receipt_text(text, charset)
    tlvs: dict[int, bytes] = {
        Tag.RECEIPTED_MESSAGE_ID: c_string(message_id),
        Tag.MESSAGE_STATE: int_value(state, 1),
    }
    if len(short_message) > 254:  # a UCS-2 receipt with a part's long id
        tlvs[Tag.MESSAGE_PAYLOAD], short_message = short_message, b""
    originator = receipt.originator[:20]
    alphanumeric = not originator.lstrip("+").isdigit()
    return DeliverSm(
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=receipt.msisdn[:20],
        dest_addr_ton=5 if alphanumeric else 1,
        dest_addr_npi=0 if alphanumeric else 1,
        destination_addr=originator.encode("ascii", "replace").decode("ascii"),
        esm_class=ESM_DELIVERY_RECEIPT,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
    )


def deliver_pdu(receipt: PendingReceipt, charset: TextCharset = TextCharset.GSM7) -> DeliverSm:
    """What a queued row becomes on the wire: a receipt, or an inbound message."""
    if receipt.inbound_id is not None:
        return inbound_pdu(receipt, charset)
    return receipt_pdu(receipt, charset)


def inbound_pdu(receipt: PendingReceipt, charset: TextCharset = TextCharset.GSM7) -> DeliverSm:
    """An inbound message (MO) as a deliver_sm that is no receipt (esm_class 0): from the
    sender to the client's number, the text in the client's default alphabet when it fits,
    else UCS-2, as receipts are written; a text over short_message's 254 octets goes whole
    in message_payload (no UDH parts: every receiver ESME reads message_payload)."""
    short_message, data_coding = _receipt_text(receipt.body, charset)
    tlvs: dict[int, bytes] = {}
    if len(short_message) > 254:
        tlvs[Tag.MESSAGE_PAYLOAD], short_message = short_message, b""
    recipient = receipt.originator[:20]
    short_code = recipient.isdigit() and len(recipient) <= 8
    return DeliverSm(
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=receipt.msisdn[:20],
        dest_addr_ton=3 if short_code else 1,
        dest_addr_npi=0 if short_code else 1,
        destination_addr=recipient,
        esm_class=0,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
    )


# ASCII characters GSM-7 writes as the same octet (not @ $ _ ` nor the bracket family):
# a receipt made only of these reads the same in every alphabet data_coding 0 may mean.
_SAME_IN_GSM = bytes(
    c for c in range(0x20, 0x7F) if is_gsm7(chr(c)) and encode_gsm7(chr(c)) == bytes((c,))
)


def _receipt_text(text: str, charset: TextCharset) -> tuple[bytes, int]:
    if text.isascii() and not text.encode("ascii").translate(None, _SAME_IN_GSM):
        return text.encode("ascii"), DataCoding.DEFAULT
    try:
        if charset is TextCharset.LATIN1:
            return text.encode("latin-1"), DataCoding.DEFAULT
        if charset is TextCharset.ASCII:
            return text.encode("ascii"), DataCoding.DEFAULT
        septets = encode_gsm7(text)
        if charset is TextCharset.GSM7_PACKED:
            return pack_septets(septets), DataCoding.DEFAULT
        return septets, DataCoding.DEFAULT
    except (UnencodableText, UnicodeEncodeError):
        return encode_ucs2(text), DataCoding.UCS2


Answered = Callable[[PendingReceipt, bool], None]


class ReceiptBind(Protocol):
    """What the sender needs of a bind (a ServerConnection)."""

    receipts_in_flight: int

    @property
    def closed(self) -> bool: ...

    def deliver(self, receipt: PendingReceipt, answered: Answered) -> None: ...


class ReceiptSender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        receivers: Callable[[], dict[int, list[ReceiptBind]]],
        *,
        window: int,
        poll: float,
        retry: float,
        response_timeout: float,
        on_turn: Callable[[], None] = lambda: None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.receivers = receivers  # client id -> its open receiver/transceiver binds
        self.window = window
        # Woken by the commits that add receipts, in any process (tidings/wakeups.py), and
        # then looking only every `idle_poll`; without a hub, every `poll`.
        hub = wakeups_of(sessions)
        self.poll = hub.idle_poll if hub is not None else poll
        self.retry = retry
        self.response_timeout = response_timeout
        self.on_turn = on_turn  # housekeeping of the server, once a turn
        # Set: look again now (an answer, a new receiver bind, a committed receipt).
        self.due = hub.subscribe(SMPP_RECEIPTS) if hub is not None else asyncio.Event()
        self._in_flight: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._done: list[int] = []  # answered ESME_ROK, not yet marked sent

    def _answered(self, receipt: PendingReceipt, ok: bool) -> None:
        self._in_flight.discard(receipt.id)
        if ok:
            self._done.append(receipt.id)
            self._retry_at.pop(receipt.id, None)
        else:
            self._retry_at[receipt.id] = time.monotonic() + self.retry
        self.due.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Offer pending receipts until ``stopping``; then wait for answers and mark them."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.due.wait(), self.poll)
            self.due.clear()
            self.on_turn()
            try:
                await self.offer()
            except Exception:  # the database may be away for a moment: try again next turn
                log.exception("SMPP receipts")
        deadline = time.monotonic() + self.response_timeout + 1
        while self._in_flight and time.monotonic() < deadline:
            self.due.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.due.wait(), deadline - time.monotonic())
        if self._done:
            with contextlib.suppress(Exception):
                async with transaction(self.sessions) as session:
                    await mark_sent(session, self._done, self.clock.now())

    async def offer(self) -> None:
        """Mark what was answered, read the next receipts and send them (one transaction)."""
        receivers = {k: v for k, v in self.receivers().items() if v}
        capacity = sum(self.window - b.receipts_in_flight for v in receivers.values() for b in v)
        if not self._done and capacity <= 0:
            return
        now = time.monotonic()
        waiting = [i for i, at in self._retry_at.items() if at > now]
        sent, self._done = self._done, []
        pending: Sequence[PendingReceipt] = []
        try:
            async with transaction(self.sessions) as session:
                await mark_sent(session, sent, self.clock.now())
                if capacity > 0:
                    # Answered while mark_sent ran: in _done now, no longer in _in_flight.
                    exclude = [*self._in_flight, *waiting, *self._done]
                    pending = await pending_receipts(session, list(receivers), exclude, capacity)
        except BaseException:
            self._done.extend(sent)  # marked next turn
            raise
        for receipt in pending:
            binds = [
                b
                for b in receivers[receipt.client_id]
                if b.receipts_in_flight < self.window and not b.closed
            ]
            if not binds:
                continue
            bind = min(binds, key=lambda b: b.receipts_in_flight)
            self._in_flight.add(receipt.id)
            bind.deliver(receipt, self._answered)
