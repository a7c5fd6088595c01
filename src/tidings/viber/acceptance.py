"""Accepting Viber messages: validate, price and route (pure), then charge and store.

Like SMS acceptance (`tidings.messages.acceptance`), in two halves: `prepare_viber` needs
only a `Catalog` snapshot; `write_viber` stores a prepared request in the caller's one
transaction — the sender checked against the client's registered alpha names, references
checked, messages, their Viber content, dispatch jobs and the ledger entry inserted, the
balance debited — all or nothing. Each recipient of each `messages[]` entry is one message.

The SMS alternative is checked here too (its text fits, there is an SMS price and route to
the number), so that a fallback later only fails when prices or routes changed meanwhile.
It is charged when the fallback happens, not now (see fallback.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.accounts.service import Caller
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.delivery.repository import DispatchRepository
from tidings.errors import (
    Conflict,
    InsufficientFunds,
    InvalidRequest,
    OptedOut,
    PricingError,
    RoutingError,
)
from tidings.messages.acceptance import Limits, RecipientChecks, RefusedItem
from tidings.messages.catalog import Catalog
from tidings.messages.encoding import segment
from tidings.messages.repository import MessageRepository
from tidings.messages.status import Status
from tidings.numbering import Destination
from tidings.optouts.repository import OptOutRepository
from tidings.viber.repository import VIBER, SenderRepository, ViberRepository

SMS = "sms"
DEFAULT_TTL_SECONDS = 86_400
DEFAULT_SMS_VALIDITY_SECONDS = 72 * 3600


@dataclass(frozen=True, slots=True)
class SmsAlternative:
    text: str
    originator: str
    validity_seconds: int = DEFAULT_SMS_VALIDITY_SECONDS


@dataclass(frozen=True, slots=True)
class Recipient:
    msisdn: str
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class ViberItem:
    """One entry of `messages[]`: a text for one or more recipients."""

    recipients: Sequence[Recipient]
    text: str
    alpha_name: str
    callback_url: str | None = None
    is_promotional: bool = False
    img: str | None = None
    caption: str | None = None
    action: str | None = None
    send_at: datetime | None = None
    sms: SmsAlternative | None = None


@dataclass(frozen=True, slots=True)
class ViberRequest:
    messages: Sequence[ViberItem]
    tariff: int | None = None  # None: the client's own tariff
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    source: str = "api"


@dataclass(frozen=True, slots=True)
class PricedViber:
    item: ViberItem
    recipient: Recipient
    destination: Destination
    price: Decimal
    currency: str
    supplier_id: int | None = None


@dataclass(frozen=True, slots=True)
class ViberQuote:
    items: list[PricedViber]
    total_price: Decimal
    currency: str
    tariff: int


@dataclass(frozen=True, slots=True)
class PreparedViber:
    caller: Caller
    request: ViberRequest
    quote: ViberQuote


@dataclass(frozen=True, slots=True)
class AcceptedViber:
    id: int
    reference: str | None
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class ViberAcceptance:
    items: list[AcceptedViber]
    total_price: Decimal
    currency: str
    # Recipients refused one by one (opted out; `index` counts over every `to` in order).
    refused: list[RefusedItem] = field(default_factory=list)


def _at(index: int, to: int, what: str) -> str:
    return f"messages[{index}].to[{to}]: {what}"


def quote_viber(
    catalog: Catalog, caller: Caller, request: ViberRequest, limits: Limits
) -> ViberQuote:
    """Validate and price a request (nothing stored, no database)."""
    count = sum(len(item.recipients) for item in request.messages)
    if count == 0:
        raise InvalidRequest("no recipients in the request", reason="empty_batch")
    if count > limits.max_batch_size:
        raise InvalidRequest(
            f"{count} messages exceed the batch maximum of {limits.max_batch_size}",
            reason="batch_too_large",
        )
    tariff = caller.tariff if request.tariff is None else request.tariff
    prices = catalog.price_list(VIBER, tariff)
    if not prices:
        raise PricingError(f"tariff {tariff} has no Viber prices", reason="inactive_tariff")
    sms_prices = catalog.price_list(SMS, tariff)
    checks = RecipientChecks()
    priced: list[PricedViber] = []
    total = Decimal(0)
    currency: str | None = None
    for index, item in enumerate(request.messages):
        if item.sms is not None and segment(item.sms.text).parts > limits.max_parts:
            raise InvalidRequest(
                f"messages[{index}]: the SMS alternative needs more than {limits.max_parts} parts",
                reason="bad_options",
            )
        for to, recipient in enumerate(item.recipients):
            where = f"messages[{index}].to[{to}]: "
            destination = checks.destination(recipient.msisdn, where)
            checks.reference(recipient.external_id, where)
            unit = prices.get(destination.iso)
            if unit is None:
                raise PricingError(
                    _at(index, to, f"no Viber price to {destination.iso} in tariff {tariff}"),
                    reason="no_price",
                )
            if item.sms is not None and destination.iso not in sms_prices:
                raise PricingError(
                    _at(index, to, f"no SMS price to {destination.iso} for the alternative"),
                    reason="no_price",
                )
            if currency is None:
                currency = unit.currency
            elif currency != unit.currency:
                raise PricingError(f"tariff {tariff} mixes currencies", reason="mixed_currency")
            total += unit.price
            priced.append(PricedViber(item, recipient, destination, unit.price, unit.currency))
    return ViberQuote(priced, total, currency or "EUR", tariff)


def prepare_viber(
    catalog: Catalog, caller: Caller, request: ViberRequest, limits: Limits
) -> PreparedViber:
    """Quote and route: everything short of storing."""
    quote = quote_viber(catalog, caller, request, limits)
    routes = catalog.route_table(VIBER)
    sms_routes = catalog.route_table(SMS)
    routed: list[PricedViber] = []
    for priced in quote.items:
        msisdn, iso = priced.destination.msisdn, priced.destination.iso
        supplier_id = routes.choose(msisdn, iso)
        if supplier_id is None:
            raise RoutingError(f"no Viber route to {iso}", reason="no_route")
        if priced.item.sms is not None and sms_routes.choose(msisdn, iso) is None:
            raise RoutingError(f"no SMS route to {iso} for the alternative", reason="no_route")
        routed.append(
            PricedViber(
                priced.item,
                priced.recipient,
                priced.destination,
                priced.price,
                priced.currency,
                supplier_id,
            )
        )
    return PreparedViber(
        caller, request, ViberQuote(routed, quote.total_price, quote.currency, quote.tariff)
    )


async def check_senders(session: AsyncSession, caller: Caller, request: ViberRequest) -> None:
    """Error 45 unless every alpha name of the request is registered for the client."""
    wanted = {item.alpha_name for item in request.messages}
    registered = await SenderRepository(session).registered(caller.client_id, wanted)
    missing = sorted(wanted - registered)
    if missing:
        raise InvalidRequest(
            f"alpha name {missing[0]!r} is not registered for Viber", reason="sender_not_registered"
        )


def fake_viber_acceptance(prepared: PreparedViber) -> ViberAcceptance:
    """What a test key gets: the real prices, made-up ids, nothing stored."""
    base = random.SystemRandom().randrange(10_000_000, 90_000_000)
    quote = prepared.quote
    return ViberAcceptance(
        [
            AcceptedViber(base + i, p.recipient.external_id, p.price, p.currency)
            for i, p in enumerate(quote.items)
        ],
        quote.total_price,
        quote.currency,
    )


async def write_viber(
    session: AsyncSession, clock: Clock, prepared: PreparedViber
) -> ViberAcceptance:
    """Charge and store a prepared request in the caller's transaction (all or nothing)."""
    caller, request = prepared.caller, prepared.request
    await check_senders(session, caller, request)
    quote, refused = await _without_opted_out(session, prepared)
    messages = MessageRepository(session)
    references = [p.recipient.external_id for p in quote.items if p.recipient.external_id]
    if references:
        used = await messages.references_in_use(caller.client_id, references)
        if used:
            raise Conflict(f"external_id {used[0]!r} is used already", reason="duplicate_reference")
    now = clock.now()
    # Inserted into the dispatch queue: each job is `due_at` on the message row itself.
    rows = [
        {
            **_message_row(caller, request, quote.tariff, p, now),
            "due_at": _send_at(p.item, now) or now,
        }
        for p in quote.items
    ]
    ids = await messages.insert_many(rows)
    await ViberRepository(session).add_contents(
        [
            _content_row(message_id, request, p)
            for message_id, p in zip(ids, quote.items, strict=True)
        ]
    )
    assert all(p.supplier_id is not None for p in quote.items), "prepared items are routed"
    DispatchRepository(session).enqueued({p.supplier_id or 0 for p in quote.items})
    await LedgerRepository(session).add_many(
        [(caller.client_id, -quote.total_price, "charge", f"viber:{ids[0]}")], now
    )
    # Last, so the balance row is locked only from here to the commit.
    if not await ClientRepository(session).debit_if_covered(caller.client_id, quote.total_price):
        raise InsufficientFunds(f"the balance does not cover {quote.total_price}")
    return ViberAcceptance(
        [
            AcceptedViber(message_id, p.recipient.external_id, p.price, p.currency)
            for message_id, p in zip(ids, quote.items, strict=True)
        ],
        quote.total_price,
        quote.currency,
        refused,
    )


async def _without_opted_out(
    session: AsyncSession, prepared: PreparedViber
) -> tuple[ViberQuote, list[RefusedItem]]:
    """The quote without the recipients on the client's opt-out list (one query), and those
    recipients; OptedOut when no recipient is left."""
    quote, client_id = prepared.quote, prepared.caller.client_id
    listed = await OptOutRepository(session).listed(
        [client_id], {p.destination.msisdn for p in quote.items}
    )
    if not listed:
        return quote, []
    # quote_viber priced the recipients in this order: their places, for the error text.
    places = [
        (i, j) for i, m in enumerate(prepared.request.messages) for j in range(len(m.recipients))
    ]
    kept: list[PricedViber] = []
    refused: list[RefusedItem] = []
    for index, (p, (i, j)) in enumerate(zip(quote.items, places, strict=True)):
        msisdn = p.destination.msisdn
        if (client_id, msisdn) in listed:
            error = OptedOut(msisdn, where=_at(i, j, ""))
            refused.append(RefusedItem(index, msisdn, p.recipient.external_id, error))
        else:
            kept.append(p)
    if not kept:
        raise refused[0].error
    total = sum((p.price for p in kept), Decimal(0))
    return ViberQuote(kept, total, quote.currency, quote.tariff), refused


def _send_at(item: ViberItem, now: datetime) -> datetime | None:
    return item.send_at if item.send_at and item.send_at > now else None


def _message_row(
    caller: Caller, request: ViberRequest, tariff: int, priced: PricedViber, now: datetime
) -> dict[str, object]:
    item = priced.item
    send_at = _send_at(item, now)
    return {
        "client_id": caller.client_id,
        "task_id": None,
        "channel": VIBER,
        "source": request.source,
        "msisdn": priced.destination.msisdn,
        "country": priced.destination.iso,
        "reference": priced.recipient.external_id,
        "originator": item.alpha_name,
        "body": item.text,
        "encoding": "utf-8",
        "parts": 1,
        "tariff": tariff,
        "price": priced.price,
        "currency": priced.currency,
        "status": (Status.SCHEDULED if send_at else Status.QUEUED).value,
        "callback_url": item.callback_url,
        "supplier_id": priced.supplier_id,
        "send_at": send_at,
        # The Viber TTL: past it, a message with no final report expires (and falls back).
        "expires_at": (send_at or now) + timedelta(seconds=request.ttl_seconds),
        "time_in": now,
        "parent_id": None,
    }


def _content_row(message_id: int, request: ViberRequest, priced: PricedViber) -> dict[str, object]:
    item = priced.item
    return {
        "message_id": message_id,
        "img": item.img,
        "caption": item.caption,
        "action": item.action,
        "is_promotional": item.is_promotional,
        "ttl_seconds": request.ttl_seconds,
        "sms_text": item.sms.text if item.sms else None,
        "sms_originator": item.sms.originator if item.sms else None,
        "sms_validity_seconds": item.sms.validity_seconds if item.sms else None,
        "fallback_id": None,
    }
