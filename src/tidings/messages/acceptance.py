"""Accepting messages: validate, price, route (pure), then charge and store (batched).

Acceptance has two halves. `prepare_sms` (here) checks and prices a request against a
`Catalog` snapshot without touching the database. `write_accepted` (storing.py) stores any
number of prepared requests in the caller's one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.service import Caller
from tidings.errors import (
    Conflict,
    InvalidRequest,
    PricingError,
    RoutingError,
    TidingsError,
)
from tidings.messages.catalog import Catalog
from tidings.messages.encoding import segment
from tidings.numbering import Destination, InvalidMsisdn, parse_msisdn
from tidings.routing.plan import UnitCost
from tidings.routing.service import RouteTable

# How long an HLR result decides the network of its number for HLR routing.
HLR_ROUTING_TTL = timedelta(days=7)

SMS = "sms"


@dataclass(frozen=True, slots=True)
class SmsItem:
    msisdn: str
    reference: str | None
    originator: str
    body: str
    reply_to: int | None = None  # the inbound message this answers (docs/inbound.md)


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
    expires_at: datetime | None = None  # an exact end of validity (SMPP), over validity_hours
    # More rows of an edge, written in the same transaction with the ids of this request's
    # messages (the SMPP server's receipt requests).
    after_write: Callable[[AsyncSession, Sequence[int]], Awaitable[None]] | None = None

    @property
    def is_batch(self) -> bool:
        return self.destination != "phone"


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_size: int = 10_000
    max_parts: int = 10


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
    cost: Decimal | None = None  # what the supplier charges for all parts, in cost_currency
    cost_currency: str | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    items: list[PricedItem]
    total_price: Decimal
    currency: str
    tariff: int


@dataclass(frozen=True, slots=True)
class PreparedSms:
    """A request that passed every check that needs no database, priced and routed."""

    caller: Caller
    request: SmsRequest
    quote: Quote
    # The routing snapshot that chose the suppliers: items of a route that asks for HLR
    # routing are chosen again at write time, by the number's cached HLR network.
    routes: RouteTable | None = None


@dataclass(frozen=True, slots=True)
class AcceptedItem:
    id: int
    reference: str | None
    price: Decimal
    currency: str
    parts: int


@dataclass(frozen=True, slots=True)
class RefusedItem:
    """A number of a batch refused on its own while the rest went on (docs/optouts.md)."""

    index: int  # its place in the request
    msisdn: str
    reference: str | None
    error: TidingsError


@dataclass(frozen=True, slots=True)
class Acceptance:
    items: list[AcceptedItem]
    total_price: Decimal
    currency: str
    task_id: int | None
    # Numbers of the request refused one by one (opted out): not stored, not charged.
    refused: list[RefusedItem] = field(default_factory=list)


class RecipientChecks:
    """The rules every product's request shares for its recipients: a valid mobile number,
    no number twice, no client reference twice. `where` prefixes an error with the item's
    place in the request ("phones[3]: ", or "" for a single message)."""

    __slots__ = ("_msisdns", "_references")

    def __init__(self) -> None:
        self._msisdns: set[str] = set()
        self._references: set[str] = set()

    def destination(self, msisdn: str, where: str) -> Destination:
        try:
            destination = parse_msisdn(msisdn)
        except InvalidMsisdn as error:
            raise InvalidRequest(
                f"{where}invalid msisdn {msisdn!r}: {error}", reason="bad_msisdn", field="msisdn"
            ) from None
        if destination.msisdn in self._msisdns:
            raise InvalidRequest(
                f"{where}phone {destination.msisdn} is in the request twice",
                reason="duplicate_phone",
                field="msisdn",
            )
        self._msisdns.add(destination.msisdn)
        return destination

    def reference(self, reference: str | None, where: str) -> None:
        if reference is None:
            return
        if reference in self._references:
            raise Conflict(
                f"{where}reference {reference!r} is in the request twice",
                reason="duplicate_reference",
                field="reference",
            )
        self._references.add(reference)


def fail_at(index: int, request: SmsRequest, what: str) -> str:
    return f"phones[{index}]: {what}" if request.is_batch else what


def quote_sms(catalog: Catalog, caller: Caller, request: SmsRequest, limits: Limits) -> Quote:
    """Validate and price a request (nothing stored, no database)."""
    if not request.items:
        raise InvalidRequest("no messages in the request", reason="empty_batch", field="phones")
    if len(request.items) > limits.max_batch_size:
        raise InvalidRequest(
            f"{len(request.items)} messages exceed the batch maximum of {limits.max_batch_size}",
            reason="batch_too_large",
        )
    tariff = caller.tariff if request.tariff is None else request.tariff
    prices = catalog.price_list(SMS, tariff)
    if not prices:
        raise PricingError(f"tariff {tariff} has no SMS prices", reason="inactive_tariff")
    checks = RecipientChecks()
    priced: list[PricedItem] = []
    total = Decimal(0)
    currency: str | None = None
    for index, item in enumerate(request.items):
        where = f"phones[{index}]: " if request.is_batch else ""
        destination = checks.destination(item.msisdn, where)
        checks.reference(item.reference, where)
        segmentation = segment(item.body)
        if segmentation.parts > limits.max_parts:
            raise InvalidRequest(
                fail_at(
                    index,
                    request,
                    f"text needs {segmentation.parts} parts, more than {limits.max_parts}",
                ),
                reason="body_too_long",
                field="body",
            )
        unit = prices.get(destination.iso)
        if unit is None:
            raise PricingError(
                fail_at(index, request, f"no SMS price to {destination.iso} in tariff {tariff}"),
                reason="no_price",
            )
        if currency is None:
            currency = unit.currency
        elif currency != unit.currency:
            raise PricingError(f"tariff {tariff} mixes currencies", reason="mixed_currency")
        amount = unit.price * segmentation.parts
        total += amount
        priced.append(
            PricedItem(
                index=index,
                item=item,
                destination=destination,
                encoding=segmentation.encoding.value,
                parts=segmentation.parts,
                price=amount,
                currency=unit.currency,
            )
        )
    return Quote(items=priced, total_price=total, currency=currency or "EUR", tariff=tariff)


def prepare_sms(
    catalog: Catalog, caller: Caller, request: SmsRequest, limits: Limits
) -> PreparedSms:
    """Quote and route a request: everything short of storing it."""
    quote = quote_sms(catalog, caller, request, limits)
    routes = catalog.route_table(SMS)
    routed: list[PricedItem] = []
    hlr = False
    for item in quote.items:
        decision = routes.decide(item.destination)
        if decision.supplier_id is None:
            raise RoutingError(
                fail_at(item.index, request, f"no SMS route to {item.destination.iso}"),
                reason="no_route",
            )
        hlr = hlr or decision.hlr_routing
        routed.append(with_supplier(routes, item, decision.supplier_id, decision.cost))
    routed_quote = Quote(routed, quote.total_price, quote.currency, quote.tariff)
    return PreparedSms(
        caller=caller, request=request, quote=routed_quote, routes=routes if hlr else None
    )


def with_supplier(
    routes: RouteTable, item: PricedItem, supplier_id: int, unit: UnitCost | None
) -> PricedItem:
    cost, cost_currency = routes.message_cost(unit, item.parts, item.currency)
    return PricedItem(
        index=item.index,
        item=item.item,
        destination=item.destination,
        encoding=item.encoding,
        parts=item.parts,
        price=item.price,
        currency=item.currency,
        supplier_id=supplier_id,
        cost=cost,
        cost_currency=cost_currency,
    )


def fake_acceptance(prepared: PreparedSms) -> Acceptance:
    """What a test key gets: the real prices, made-up ids, nothing stored."""
    rng = random.SystemRandom()
    base = rng.randrange(10_000_000, 90_000_000)
    quote = prepared.quote
    return Acceptance(
        items=[
            AcceptedItem(base + p.index, p.item.reference, p.price, p.currency, p.parts)
            for p in quote.items
        ],
        total_price=quote.total_price,
        currency=quote.currency,
        task_id=rng.randrange(10_000, 90_000) if prepared.request.is_batch else None,
    )
