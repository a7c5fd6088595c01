"""The SMPP 3.4 supplier connector: Tidings as an ESME bound to a supplier's SMSC.

Options (``tidings suppliers create --kind smpp --option key=value``; docs/smpp.md has more):

    host, port            the SMSC (required; port default 2775)
    system_id, password   bind credentials (required)
    system_type           default ""
    bind_mode             transceiver (default) | transmitter_receiver
    binds                 transmitting binds (default 1)
    receiver_binds        receiver binds in transmitter_receiver mode (default 1)
    window                outstanding submit_sm per bind (default 10)
    throughput            submit_sm per second per bind (default 0: no limit)
    source_ton/source_npi auto (default: alphanumeric 5/0, short code 3/0, else 1/1) or numbers
    dest_ton/dest_npi     default 1/1
    charset               gsm7 (default) | gsm7-packed | latin1 | ascii
    data_coding           data_coding for GSM-7 texts (default: 0, or 3/1 for latin1/ascii)
    long_messages         udh (default) | udh16 | sar | payload
    registered_delivery   default 1 (a receipt for success and failure)
    service_type          default ""
    validity              true (default): send the message's validity as validity_period
    receipt_id_format     as_is (default) | hex_to_dec | dec_to_hex | auto
    retry_errors          extra command_status names/numbers answered with RETRY, not rejection
    retryable             the same (the routing name): e.g. 0x58,0x08; RETRY fails over
    tls                   false (default); tls_verify (default true), tls_ca (a CA file)
    enquire_link          seconds between keep-alives (default 30)
    response_timeout      seconds to wait for a response (default 10)
    reconnect_delay / reconnect_max   back-off between connection attempts (0.5 / 30 s)
    throttle_pause        first pause of a bind after ESME_RTHROTTLED (0.5 s, doubling to 8)
    submit_deadline       seconds one submit() may take (default 20, below the lane's 30)
    bind_wait             seconds submit() waits for a first bind (default 5)

Delivery guarantees. A message is ACCEPTED only with the id of its submit_sm_resp. A submit
never written (no bind, window full until the deadline) comes back as RETRY; so does one
written and unanswered when the bind is lost (the SMSC may have it: SMPP has no idempotency,
so that one can reach the handset twice — see docs/smpp.md). ESME_RTHROTTLED and
ESME_RMSGQFUL pause the bind and the part is sent again within the deadline, or comes back
as RETRY with ``retry_after``. Any other error rejects the message with the error's name.

Long messages: every part asks for a receipt; the message's supplier_message_id is the
first part's id and the outcome carries every part's id (``part_ids``), which the delivery
domain stores (``message_parts``). Each part's receipt is reported under its own id; the
database settles the message: delivered when every part is, failed when one part fails, and
that holds across restarts.

MO: a deliver_sm / data_sm that is no receipt is an inbound message (docs/inbound.md). It is
answered only once stored (the inbound sink, batched like receipts); a part of a long one
(UDH 8/16-bit, SAR, message_payload, read by the SMPP server's ``text.read_part``) is stored
as a part and the message is written when its last part comes. A deliver_sm carries no id,
so a resend of the same PDU (an SMSC that lost our answer) is recognised by a fingerprint of
its content within ten minutes (``inbound.service.DEFAULT_DEDUPE_WINDOW``). Without an
inbound sink (a connector used on its own) MO are acknowledged and counted, not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tidings.clock import Clock
from tidings.connectors.base import (
    InboundItem,
    InboundSink,
    OutboundMessage,
    ReportSink,
    SubmitOutcome,
    SubmitResult,
    SupplierReport,
)
from tidings.connectors.smpp.batcher import Batcher
from tidings.connectors.smpp.mo import inbound_item
from tidings.connectors.smpp.pdu import (
    CommandStatus,
    DataSm,
    DeliverSm,
    EncodeError,
    SubmitSm,
    SubmitSmResp,
    status_name,
)
from tidings.connectors.smpp.receipts import IdFormat, IdNormaliser, Receipt, receipt_from_pdu
from tidings.connectors.smpp.session import (
    BindMode,
    EsmeSession,
    Link,
    NotBound,
    SessionConfig,
    Unacknowledged,
)
from tidings.connectors.smpp.text import (
    LongMode,
    TextCharset,
    TextOptions,
    TextRefused,
    encode_message,
)
from tidings.errors import ConfigurationError
from tidings.messages.encoding import UnencodableText

__all__ = ["SmppConnector", "SmppOptions", "parse_options", "smpp_validity"]

log = logging.getLogger("tidings.smpp")

THROTTLES = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})
MAX_PART_ATTEMPTS = 50  # sends of one part within one submit() (throttling, lost binds)


@dataclass(frozen=True, slots=True)
class SmppOptions:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    bind_mode: str = "transceiver"
    binds: int = 1
    receiver_binds: int = 1
    window: int = 10
    throughput: float = 0.0
    source_ton: int | None = None  # None: by the originator's form
    source_npi: int | None = None
    dest_ton: int = 1
    dest_npi: int = 1
    text: TextOptions = field(default_factory=TextOptions)
    registered_delivery: int = 1
    service_type: str = ""
    validity: bool = True
    receipt_id_format: IdFormat = IdFormat.AS_IS
    retry_errors: frozenset[int] = frozenset()
    tls: bool = False
    tls_verify: bool = True
    tls_ca: str | None = None
    enquire_link: float = 30.0
    response_timeout: float = 10.0
    connect_timeout: float = 10.0
    reconnect_delay: float = 0.5
    reconnect_max: float = 30.0
    throttle_pause: float = 0.5
    submit_deadline: float = 20.0
    bind_wait: float = 5.0
    report_batch: int = 500
    report_wait: float = 0.005


def _int(options: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = options.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"smpp option {name} must be a whole number") from None
    if not low <= number <= high:
        raise ConfigurationError(f"smpp option {name} must be between {low} and {high}")
    return number


def _float(options: dict[str, Any], name: str, default: float, low: float = 0.0) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"smpp option {name} must be a number") from None
    if number < low:
        raise ConfigurationError(f"smpp option {name} must be at least {low}")
    return number


def _bool(options: dict[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"smpp option {name} must be true or false")


def _choice(options: dict[str, Any], name: str, default: str, allowed: Sequence[str]) -> str:
    value = str(options.get(name, default)).strip().lower()
    if value not in allowed:
        raise ConfigurationError(f"smpp option {name} must be one of {', '.join(allowed)}")
    return value


def _ton(options: dict[str, Any], name: str) -> int | None:
    value = options.get(name, "auto")
    if str(value).lower() == "auto":
        return None
    return _int(options, name, 0, 0, 255)


def _statuses(value: Any) -> frozenset[int]:
    if value in (None, ""):
        return frozenset()
    codes: set[int] = set()
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            codes.add(CommandStatus[item.upper()].value)
            continue
        except KeyError:
            pass
        try:
            codes.add(int(item, 0))
        except ValueError:
            raise ConfigurationError(f"smpp retry_errors: {item!r} is no command_status") from None
    return frozenset(codes)


def parse_options(options: dict[str, Any]) -> SmppOptions:
    """Validated options of an smpp supplier; raises ConfigurationError."""
    try:
        host = str(options["host"])
        system_id = str(options["system_id"])
        password = str(options["password"])
    except KeyError as missing:
        raise ConfigurationError(f"smpp supplier needs the option {missing}") from None
    if len(system_id) > 15 or len(password) > 8:
        raise ConfigurationError("smpp system_id is at most 15 characters, password at most 8")
    mode = _choice(
        options, "bind_mode", "transceiver", ("transceiver", "transmitter_receiver", "trx")
    )
    gsm_coding = options.get("data_coding")
    return SmppOptions(
        host=host,
        port=_int(options, "port", 2775, 1, 65535),
        system_id=system_id,
        password=password,
        system_type=str(options.get("system_type", "")),
        bind_mode="transceiver" if mode == "trx" else mode,
        binds=_int(options, "binds", 1, 1, 64),
        receiver_binds=_int(options, "receiver_binds", 1, 0, 64),
        window=_int(options, "window", 10, 1, 1000),
        throughput=_float(options, "throughput", 0.0),
        source_ton=_ton(options, "source_ton"),
        source_npi=_ton(options, "source_npi"),
        dest_ton=_int(options, "dest_ton", 1, 0, 255),
        dest_npi=_int(options, "dest_npi", 1, 0, 255),
        text=TextOptions(
            charset=TextCharset(
                _choice(options, "charset", "gsm7", [c.value for c in TextCharset])
            ),
            long=LongMode(_choice(options, "long_messages", "udh", [m.value for m in LongMode])),
            gsm_data_coding=None
            if gsm_coding in (None, "")
            else _int(options, "data_coding", 0, 0, 255),
        ),
        registered_delivery=_int(options, "registered_delivery", 1, 0, 255),
        service_type=str(options.get("service_type", "")),
        validity=_bool(options, "validity", True),
        receipt_id_format=IdFormat(
            _choice(options, "receipt_id_format", "as_is", [f.value for f in IdFormat])
        ),
        # `retryable` (docs/routing.md) is the same list: such refusals fail over.
        retry_errors=_statuses(options.get("retry_errors")) | _statuses(options.get("retryable")),
        tls=_bool(options, "tls", False),
        tls_verify=_bool(options, "tls_verify", True),
        tls_ca=str(options["tls_ca"]) if options.get("tls_ca") else None,
        enquire_link=_float(options, "enquire_link", 30.0, 1.0),
        response_timeout=_float(options, "response_timeout", 10.0, 0.1),
        connect_timeout=_float(options, "connect_timeout", 10.0, 0.1),
        reconnect_delay=_float(options, "reconnect_delay", 0.5, 0.01),
        reconnect_max=_float(options, "reconnect_max", 30.0, 0.01),
        throttle_pause=_float(options, "throttle_pause", 0.5, 0.001),
        submit_deadline=_float(options, "submit_deadline", 20.0, 0.1),
        bind_wait=_float(options, "bind_wait", 5.0),
        report_batch=_int(options, "report_batch", 500, 1, 10_000),
        report_wait=_float(options, "report_wait", 0.005),
    )


def smpp_validity(expires_at: datetime) -> str:
    """An absolute SMPP time in UTC: YYMMDDhhmmss, tenths, quarter hours from UTC, "+"."""
    return expires_at.astimezone(UTC).strftime("%y%m%d%H%M%S") + "000+"


def _source_ton_npi(originator: str) -> tuple[int, int]:
    digits = originator.removeprefix("+")
    if not digits.isdigit():
        return 5, 0  # alphanumeric
    if len(digits) <= 8:
        return 3, 0  # network-specific short code
    return 1, 1  # international, E.164


class _Bounded(dict[str, Any]):
    """A dict that forgets its oldest entries past a size."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: str, value: Any) -> None:
        self[key] = value
        while len(self) > self.limit:
            del self[next(iter(self))]


class _Failure(Exception):
    def __init__(self, outcome: SubmitOutcome) -> None:
        self.outcome = outcome


class SmppConnector:
    def __init__(self, supplier_id: int, options: dict[str, Any], clock: Clock) -> None:
        self.supplier_id = supplier_id
        self.clock = clock
        self.options = parse_options(options)
        self.ids = IdNormaliser(self.options.receipt_id_format)
        self.sessions: list[EsmeSession] = []
        self._slots: asyncio.Queue[Link] = asyncio.Queue()
        self._any_bound = asyncio.Event()
        self._reports: Batcher[SupplierReport] | None = None
        self._inbound_sink: InboundSink | None = None
        self._inbound: Batcher[InboundItem] | None = None
        # Parts already accepted of a long message whose later part failed to go: a retry
        # resumes after them instead of sending them twice.
        self._progress = _Bounded(10_000)
        self._validity_cache: tuple[datetime | None, str] = (None, "")
        self.stats = {"submitted": 0, "throttled": 0, "receipts": 0, "mo": 0}

    # --- life cycle ---

    def _session_config(self, mode: BindMode) -> SessionConfig:
        o = self.options
        return SessionConfig(
            host=o.host,
            port=o.port,
            system_id=o.system_id,
            password=o.password,
            system_type=o.system_type,
            mode=mode,
            window=o.window,
            throughput=o.throughput,
            tls=self._tls_context() if o.tls else None,
            connect_timeout=o.connect_timeout,
            response_timeout=o.response_timeout,
            enquire_link_interval=o.enquire_link,
            reconnect_delay=o.reconnect_delay,
            reconnect_max=o.reconnect_max,
            throttle_pause=o.throttle_pause,
            throttle_pause_max=max(o.throttle_pause, 8.0),
        )

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.options.tls_ca)
        if not self.options.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def attach_inbound(self, sink: InboundSink) -> None:
        """Where inbound messages go (before start); without it they are acked and counted."""
        self._inbound_sink = sink

    async def start(self, reports: ReportSink) -> None:
        o = self.options
        self._reports = Batcher(reports, self.supplier_id, o.report_batch, o.report_wait)
        if self._inbound_sink is not None:
            self._inbound = Batcher(
                self._inbound_sink, self.supplier_id, o.report_batch, o.report_wait
            )
        self._slots = asyncio.Queue()
        self._any_bound = asyncio.Event()
        if o.bind_mode == "transceiver":
            modes = [BindMode.TRANSCEIVER] * o.binds
        else:
            modes = [BindMode.TRANSMITTER] * o.binds + [BindMode.RECEIVER] * o.receiver_binds
        counts: dict[BindMode, int] = {}
        for mode in modes:
            counts[mode] = counts.get(mode, 0) + 1
            session = EsmeSession(
                self._session_config(mode),
                self._on_deliver,
                name=f"smpp-{self.supplier_id}-{mode.value[:2]}{counts[mode]}",
                on_bound=self._on_bound,
            )
            self.sessions.append(session)
            session.start()

    async def stop(self) -> None:
        for session in self.sessions:
            await session.stop()
        if self._reports is not None:
            await self._reports.drain()
        if self._inbound is not None:
            await self._inbound.drain()
        self.sessions = []

    def _on_bound(self, link: Link) -> None:
        if link.config.mode.transmits:
            for _ in range(link.config.window):
                self._slots.put_nowait(link)
            self._any_bound.set()

    @property
    def bound_links(self) -> list[Link]:
        return [s.link for s in self.sessions if s.link is not None and s.link.usable]

    # --- submitting ---

    # The delivery lane may pass ``answered``: it gets each message's outcome as soon as its
    # last submit_sm_resp is in, so ``sent`` is recorded without waiting for the batch.
    reports_each_answer = True

    async def submit(
        self,
        batch: Sequence[OutboundMessage],
        answered: Callable[[SubmitOutcome], None] | None = None,
    ) -> list[SubmitOutcome]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.submit_deadline
        if not any(link.config.mode.transmits for link in self.bound_links):
            self._any_bound.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._any_bound.wait(), self.options.bind_wait)
            if not any(link.config.mode.transmits for link in self.bound_links):
                errors = {s.last_error for s in self.sessions if s.last_error}
                reason = "no SMPP bind" + (f": {'; '.join(sorted(errors))}" if errors else "")
                return [
                    SubmitOutcome(m.message_id, SubmitResult.RETRY, error=reason) for m in batch
                ]
        if len(batch) == 1:
            return [await self._submit_message(batch[0], deadline)]
        # As many workers as there are window slots: each takes the next message in order.
        todo = iter(batch)
        outcomes: list[SubmitOutcome] = []

        async def work() -> None:
            for message in todo:
                outcome = await self._submit_message(message, deadline)
                outcomes.append(outcome)
                if answered is not None:
                    answered(outcome)

        slots = sum(link.config.window for link in self.bound_links if link.config.mode.transmits)
        await asyncio.gather(*(work() for _ in range(max(1, min(len(batch), slots)))))
        return outcomes

    def _pdus(self, message: OutboundMessage) -> list[SubmitSm]:
        o = self.options
        parts = encode_message(message.body, message.encoding, o.text, message.message_id)
        auto_ton, auto_npi = _source_ton_npi(message.originator)
        source = message.originator.removeprefix("+") if auto_ton == 1 else message.originator
        validity = self._validity(message.expires_at) if o.validity else ""
        return [
            SubmitSm(
                service_type=o.service_type,
                source_addr_ton=auto_ton if o.source_ton is None else o.source_ton,
                source_addr_npi=auto_npi if o.source_npi is None else o.source_npi,
                source_addr=source,
                dest_addr_ton=o.dest_ton,
                dest_addr_npi=o.dest_npi,
                destination_addr=message.msisdn.removeprefix("+"),
                esm_class=part.esm_class,
                validity_period=validity,
                registered_delivery=o.registered_delivery,
                data_coding=part.data_coding,
                short_message=part.short_message,
                tlvs=dict(part.tlvs),
            )
            for part in parts
        ]

    def _validity(self, expires_at: datetime) -> str:
        cached = self._validity_cache
        if cached[0] != expires_at:
            cached = self._validity_cache = (expires_at, smpp_validity(expires_at))
        return cached[1]

    async def _submit_message(self, message: OutboundMessage, deadline: float) -> SubmitOutcome:
        mid = message.message_id
        try:
            pdus = self._pdus(message)
        except (UnencodableText, EncodeError) as error:
            return SubmitOutcome(mid, SubmitResult.REJECTED, error=f"SMPP: {error}"[:200])
        total = len(pdus)
        done: list[str] = list(self._progress.pop(str(mid), None) or []) if total > 1 else []
        try:
            for seqnum in range(len(done) + 1, total + 1):
                raw_id = await self._submit_part(pdus[seqnum - 1], mid, deadline, seqnum, total)
                done.append(raw_id)
        except _Failure as failure:
            if failure.outcome.result is SubmitResult.RETRY and done:
                self._progress.remember(str(mid), done)
            return failure.outcome
        return SubmitOutcome(
            mid,
            SubmitResult.ACCEPTED,
            supplier_message_id=done[0],
            part_ids=tuple(done) if total > 1 else (),
        )

    async def _submit_part(
        self, pdu: SubmitSm, mid: int, deadline: float, seqnum: int, total: int
    ) -> str:
        """The canonical id the SMSC gave this part; raises _Failure with the outcome."""
        where = f" (part {seqnum}/{total})" if total > 1 else ""
        loop = asyncio.get_running_loop()
        for _attempt in range(MAX_PART_ATTEMPTS):
            link = await self._take_slot(deadline)
            if link is None:
                raise _Failure(
                    SubmitOutcome(
                        mid, SubmitResult.RETRY, error=f"SMPP: no free bind in time{where}"
                    )
                )
            try:
                response = await link.submit(pdu)
            except NotBound:
                continue  # never written: take another slot
            except EncodeError as error:  # an address or field the spec does not allow
                raise _Failure(
                    SubmitOutcome(mid, SubmitResult.REJECTED, error=f"SMPP: {error}"[:200])
                ) from None
            except Unacknowledged as error:
                raise _Failure(
                    SubmitOutcome(mid, SubmitResult.RETRY, error=f"SMPP: {error}{where}"[:200])
                ) from None
            finally:
                if link.usable:
                    self._slots.put_nowait(link)
            self.stats["submitted"] += 1
            status = response.command_status
            if status == CommandStatus.ESME_ROK and isinstance(response, SubmitSmResp):
                if not response.message_id.strip():
                    log.warning("SMSC accepted a submit without a message id")
                    return f"noid-{self.supplier_id}-{mid}-{seqnum}"
                return self.ids.submitted(response.message_id)
            if status in THROTTLES:
                self.stats["throttled"] += 1
                pause = link.pause_left
                if loop.time() + pause < deadline:
                    continue  # the bind is paused; the part goes again, first in line
                raise _Failure(
                    SubmitOutcome(
                        mid,
                        SubmitResult.RETRY,
                        error=f"SMPP {status_name(status)}{where}",
                        retry_after=max(pause, 1.0),
                    )
                )
            result = SubmitResult.RETRY if status in self.options.retry_errors else None
            if status == CommandStatus.ESME_ROK:  # a generic_nack or odd PDU with status 0
                result, status = SubmitResult.RETRY, CommandStatus.ESME_RSYSERR
            raise _Failure(
                SubmitOutcome(
                    mid,
                    result or SubmitResult.REJECTED,
                    error=f"SMPP {status_name(status)}{where}",
                )
            )
        raise _Failure(
            SubmitOutcome(mid, SubmitResult.RETRY, error=f"SMPP: too many attempts{where}")
        )

    async def _take_slot(self, deadline: float) -> Link | None:
        while not self._slots.empty():
            link = self._slots.get_nowait()
            if link.usable:
                return link
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                link = await asyncio.wait_for(self._slots.get(), remaining)
            except TimeoutError:
                return None
            if link.usable:
                return link
            # A slot of a link that has gone: dropped (its replacement brings its own).

    # --- receipts ---

    def _on_deliver(self, link: Link, pdu: DeliverSm | DataSm) -> asyncio.Future[int]:
        """The deliver_sm's answer, due once its receipt is stored (a future, not a task)."""
        assert self._reports is not None, "deliver_sm before start"
        receipt = receipt_from_pdu(pdu)
        if receipt is None:
            return self._on_mo(link, pdu)
        self.stats["receipts"] += 1
        return self._reports.put([self._report_of(receipt)])

    def _report_of(self, receipt: Receipt) -> SupplierReport:
        """A part's receipt goes under the part's own id: the delivery domain knows the parts."""
        sid = self.ids.receipt(receipt.message_id)
        return SupplierReport(sid, receipt.status, self.clock.now(), receipt.detail)

    # --- inbound messages (MO) ---

    def _on_mo(self, link: Link, pdu: DeliverSm | DataSm) -> asyncio.Future[int]:
        """The answer to an MO: once stored, or at once when it cannot be read or kept."""
        self.stats["mo"] += 1
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self._inbound is None:
            log.info("%s: MO from %s not stored (no inbound sink)", link.name, pdu.source_addr)
            answer.set_result(CommandStatus.ESME_ROK)
            return answer
        try:
            item = inbound_item(pdu, self.options.text.charset, self.clock.now())
        except TextRefused as refused:
            # Binary or reserved codings are not text a client could read: refused, so the
            # SMSC knows (and may log it), rather than stored as nonsense.
            log.warning("%s: MO from %s refused: %s", link.name, pdu.source_addr, refused)
            answer.set_result(CommandStatus.ESME_RINVDCS)
            return answer
        return self._inbound.put([item])
