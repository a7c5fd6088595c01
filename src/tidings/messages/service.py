"""Accepting messages, quoting them, answering for them, and moving their status.

Every API adapter calls into here with the internal request model; nothing here knows
about a wire format. The caller owns the transaction.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.accounts.service import Caller
from tidings.billing.repository import LedgerRepository, PriceRepository
from tidings.clock import Clock
from tidings.delivery.repository import DispatchRepository
from tidings.errors import (
    Conflict,
    InsufficientFunds,
    InvalidRequest,
    NotFound,
    PricingError,
    RoutingError,
)
from tidings.messages.encoding import segment
from tidings.messages.models import Message, MessageEvent, Task
from tidings.messages.repository import MessageRepository
from tidings.messages.status import FINAL_STATUSES, Status, can_transition
from tidings.numbering import Destination, InvalidMsisdn, parse_msisdn
from tidings.routing.service import load_route_table

SMS = "sms"


@dataclass(frozen=True, slots=True)
class SmsItem:
    msisdn: str
    reference: str | None
    originator: str
    body: str


@dataclass(frozen=True, slots=True)
class SmsRequest:
    """One create request: a single SMS (`phone`) or a batch (`phones`, `individual`)."""

    destination: str  # phone, phones, individual
    items: Sequence[SmsItem]
    tariff: int | None = None  # None: the client's own tariff
    validity_hours: int = 72
    send_at: datetime | None = None
    callback_url: str | None = None
    source: str = "api"

    @property
    def is_batch(self) -> bool:
        return self.destination != "phone"


@dataclass(frozen=True, slots=True)
class PricedItem:
    index: int
    item: SmsItem
    destination: Destination
    encoding: str
    parts: int
    price: Decimal
    currency: str
    supplier_id: int | None = None


@dataclass(frozen=True, slots=True)
class AcceptedItem:
    id: int
    reference: str | None
    price: Decimal
    currency: str
    parts: int


@dataclass(frozen=True, slots=True)
class Acceptance:
    items: list[AcceptedItem]
    total_price: Decimal
    currency: str
    task_id: int | None


@dataclass(frozen=True, slots=True)
class Quote:
    items: list[PricedItem]
    total_price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_size: int = 10_000
    max_parts: int = 10


def _fail_at(index: int, request: SmsRequest, what: str) -> str:
    return f"phones[{index}]: {what}" if request.is_batch else what


async def quote_sms(
    session: AsyncSession, caller: Caller, request: SmsRequest, limits: Limits
) -> Quote:
    """Validate and price a request without storing anything."""
    if not request.items:
        raise InvalidRequest("no messages in the request", reason="empty_batch", field="phones")
    if len(request.items) > limits.max_batch_size:
        raise InvalidRequest(
            f"{len(request.items)} messages exceed the batch maximum of {limits.max_batch_size}",
            reason="batch_too_large",
        )
    tariff = caller.tariff if request.tariff is None else request.tariff
    destinations: list[Destination] = []
    seen_msisdns: set[str] = set()
    seen_refs: set[str] = set()
    for index, item in enumerate(request.items):
        try:
            destination = parse_msisdn(item.msisdn)
        except InvalidMsisdn as error:
            raise InvalidRequest(
                _fail_at(index, request, f"invalid msisdn {item.msisdn!r}: {error}"),
                reason="bad_msisdn",
                field="msisdn",
            ) from None
        if destination.msisdn in seen_msisdns:
            raise InvalidRequest(
                _fail_at(index, request, f"phone {destination.msisdn} is in the batch twice"),
                reason="duplicate_phone",
                field="msisdn",
            )
        seen_msisdns.add(destination.msisdn)
        if item.reference is not None:
            if item.reference in seen_refs:
                raise Conflict(
                    _fail_at(index, request, f"reference {item.reference!r} is in the batch twice"),
                    reason="duplicate_reference",
                    field="reference",
                )
            seen_refs.add(item.reference)
        destinations.append(destination)

    prices = await PriceRepository(session).for_countries(
        SMS, tariff, {d.iso for d in destinations}
    )
    if not prices and not await PriceRepository(session).for_tariff(SMS, tariff):
        raise PricingError(f"tariff {tariff} has no SMS prices", reason="inactive_tariff")
    priced: list[PricedItem] = []
    total = Decimal(0)
    currency: str | None = None
    for index, (item, destination) in enumerate(zip(request.items, destinations, strict=True)):
        segmentation = segment(item.body)
        if segmentation.parts > limits.max_parts:
            raise InvalidRequest(
                _fail_at(
                    index,
                    request,
                    f"text needs {segmentation.parts} parts, more than {limits.max_parts}",
                ),
                reason="body_too_long",
                field="body",
            )
        price = prices.get(destination.iso)
        if price is None:
            raise PricingError(
                _fail_at(index, request, f"no SMS price to {destination.iso} in tariff {tariff}"),
                reason="no_price",
            )
        if currency is None:
            currency = price.currency
        elif currency != price.currency:
            raise PricingError(f"tariff {tariff} mixes currencies", reason="mixed_currency")
        amount = price.price * segmentation.parts
        total += amount
        priced.append(
            PricedItem(
                index=index,
                item=item,
                destination=destination,
                encoding=segmentation.encoding.value,
                parts=segmentation.parts,
                price=amount,
                currency=price.currency,
            )
        )
    return Quote(items=priced, total_price=total, currency=currency or "EUR")


async def accept_sms(
    session: AsyncSession,
    clock: Clock,
    caller: Caller,
    request: SmsRequest,
    limits: Limits,
) -> Acceptance:
    """Validate, price, route, charge and store a request, whole or not at all.

    For a test key the same validation runs and the answer is made up: nothing is stored,
    charged or sent.
    """
    quote = await quote_sms(session, caller, request, limits)
    routes = await load_route_table(session, SMS)
    routed: list[PricedItem] = []
    for item in quote.items:
        supplier_id = routes.choose(item.destination.msisdn, item.destination.iso)
        if supplier_id is None:
            raise RoutingError(
                _fail_at(item.index, request, f"no SMS route to {item.destination.iso}"),
                reason="no_route",
            )
        routed.append(_with_supplier(item, supplier_id))

    if caller.is_test:
        return _fake_acceptance(quote, request)

    messages = MessageRepository(session)
    references = [i.reference for i in request.items if i.reference is not None]
    if references and (taken := await messages.references_in_use(caller.client_id, references)):
        raise Conflict(f"reference {taken[0]!r} is used already", reason="duplicate_reference")
    if not await ClientRepository(session).debit_if_covered(caller.client_id, quote.total_price):
        raise InsufficientFunds(f"the balance does not cover {quote.total_price}")

    now = clock.now()
    send_at = request.send_at if request.send_at and request.send_at > now else None
    expires_at = (send_at or now) + timedelta(hours=request.validity_hours)
    status = Status.SCHEDULED if send_at else Status.QUEUED
    task_id = None
    if request.is_batch:
        first = request.items[0]
        same_text = request.destination == "phones"
        task = await messages.add_task(
            Task(
                client_id=caller.client_id,
                destination=request.destination,
                originator=first.originator if same_text else None,
                body=first.body if same_text else None,
                validity_hours=request.validity_hours,
                total_price=quote.total_price,
                currency=quote.currency,
                created_at=now,
            )
        )
        task_id = task.id
    tariff = caller.tariff if request.tariff is None else request.tariff
    rows = [
        {
            "client_id": caller.client_id,
            "task_id": task_id,
            "channel": SMS,
            "source": request.source,
            "msisdn": p.destination.msisdn,
            "country": p.destination.iso,
            "reference": p.item.reference,
            "originator": p.item.originator,
            "body": p.item.body,
            "encoding": p.encoding,
            "parts": p.parts,
            "tariff": tariff,
            "price": p.price,
            "currency": p.currency,
            "status": status.value,
            "callback_url": request.callback_url,
            "supplier_id": p.supplier_id,
            "send_at": send_at,
            "expires_at": expires_at,
            "time_in": now,
        }
        for p in routed
    ]
    try:
        ids = await messages.insert_many(rows)
    except IntegrityError:
        # A concurrent request took one of the references between our check and insert.
        raise Conflict("a reference is used already", reason="duplicate_reference") from None
    await DispatchRepository(session).enqueue(
        [(message_id, p.supplier_id or 0) for message_id, p in zip(ids, routed, strict=True)],
        due_at=send_at or now,
    )
    reference = f"task:{task_id}" if task_id else f"message:{ids[0]}"
    await LedgerRepository(session).add_many(
        [(caller.client_id, -quote.total_price, "charge", reference)], now
    )
    return Acceptance(
        items=[
            AcceptedItem(
                id=message_id,
                reference=p.item.reference,
                price=p.price,
                currency=p.currency,
                parts=p.parts,
            )
            for message_id, p in zip(ids, routed, strict=True)
        ],
        total_price=quote.total_price,
        currency=quote.currency,
        task_id=task_id,
    )


def _with_supplier(item: PricedItem, supplier_id: int) -> PricedItem:
    return PricedItem(
        index=item.index,
        item=item.item,
        destination=item.destination,
        encoding=item.encoding,
        parts=item.parts,
        price=item.price,
        currency=item.currency,
        supplier_id=supplier_id,
    )


def _fake_acceptance(quote: Quote, request: SmsRequest) -> Acceptance:
    rng = random.SystemRandom()
    base = rng.randrange(10_000_000, 90_000_000)
    return Acceptance(
        items=[
            AcceptedItem(
                id=base + offset,
                reference=p.item.reference,
                price=p.price,
                currency=p.currency,
                parts=p.parts,
            )
            for offset, p in enumerate(quote.items)
        ],
        total_price=quote.total_price,
        currency=quote.currency,
        task_id=rng.randrange(10_000, 90_000) if request.is_batch else None,
    )


# --- Looking messages up -------------------------------------------------------------


async def get_message(session: AsyncSession, client_id: int, message_id: int) -> Message:
    message = await MessageRepository(session).get(client_id, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}", reason="message_not_found")
    return message


async def get_message_by_reference(
    session: AsyncSession, client_id: int, reference: str
) -> Message:
    message = await MessageRepository(session).get_by_reference(client_id, reference)
    if message is None:
        raise NotFound(f"no message with reference {reference!r}", reason="message_not_found")
    return message


@dataclass(frozen=True, slots=True)
class TaskSummary:
    task: Task
    counts: dict[str, int]
    sent: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, *statuses: Status) -> int:
        return sum(self.counts.get(status.value, 0) for status in statuses)


async def get_task_summary(session: AsyncSession, client_id: int, task_id: int) -> TaskSummary:
    messages = MessageRepository(session)
    task = await messages.get_task(client_id, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}", reason="task_not_found")
    return TaskSummary(
        task=task,
        counts=await messages.task_counts(task_id),
        sent=await messages.task_sent_count(task_id),
    )


async def history(
    session: AsyncSession, message: Message
) -> list[tuple[str, datetime, str | None]]:
    """The message's statuses in order, acceptance first."""
    initial = Status.SCHEDULED if message.send_at else Status.QUEUED
    entries: list[tuple[str, datetime, str | None]] = [(initial.value, message.time_in, None)]
    events: Sequence[MessageEvent] = await MessageRepository(session).events(message.id)
    entries.extend((event.status, event.at, event.detail) for event in events)
    return entries


# --- Moving status -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusChange:
    message_id: int
    status: Status
    at: datetime
    detail: str | None = None
    supplier_message_id: str | None = None
    # Set when this change is the hand-over to a supplier.
    sent: bool = False


@dataclass(slots=True)
class AppliedChange:
    message: Message
    previous: Status
    change: StatusChange


@dataclass(slots=True)
class _Refunds:
    by_client: dict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    entries: list[tuple[int, Decimal, str, str | None]] = field(default_factory=list)


async def apply_changes(
    session: AsyncSession, clock: Clock, changes: Sequence[StatusChange]
) -> list[AppliedChange]:
    """Apply status changes monotonically; return those that moved a message.

    Duplicates, late intermediate reports and anything after a final status change nothing.
    A message that reaches a final status without ever being taken by a supplier (failed,
    expired before sending, rejected at submit) is refunded.
    """
    if not changes:
        return []
    repo = MessageRepository(session)
    by_id = {m.id: m for m in await repo.lock_for_update(sorted({c.message_id for c in changes}))}
    applied: list[AppliedChange] = []
    events: list[dict[str, object]] = []
    refunds = _Refunds()
    for change in sorted(changes, key=lambda c: c.at):
        message = by_id.get(change.message_id)
        if message is None:
            continue
        current = Status(message.status)
        if change.sent and message.time_sent is None:
            message.time_sent = change.at
        if change.supplier_message_id is not None:
            message.supplier_message_id = change.supplier_message_id
        if not can_transition(current, change.status):
            continue
        message.status = change.status.value
        message.status_detail = change.detail
        if change.status in FINAL_STATUSES:
            message.time_dr = change.at
            # We only pay a supplier for what it took, so what never left is refunded.
            if message.time_sent is None:
                refunds.by_client[message.client_id] += message.price
                refunds.entries.append(
                    (message.client_id, message.price, "refund", f"message:{message.id}")
                )
        events.append(
            {
                "message_id": message.id,
                "status": change.status.value,
                "detail": change.detail,
                "at": change.at,
            }
        )
        applied.append(AppliedChange(message=message, previous=current, change=change))
    # The loaded messages are tracked by the session: its flush writes what changed above.
    await repo.add_events(events)
    clients = ClientRepository(session)
    for client_id, amount in refunds.by_client.items():
        await clients.credit(client_id, amount)
    await LedgerRepository(session).add_many(refunds.entries, clock.now())
    await session.flush()
    return applied
