"""HLR lookups: validate and price (pure), accept (charge and store), answer, record results.

Acceptance mirrors SMS: `prepare_hlr` checks and prices a request against a `Catalog`
snapshot without the database; `accept_hlr` stores it in the caller's transaction: references
checked, a provider chosen per number (routes of type `hlr`), the balance debited with one
conditional UPDATE, the lookups inserted. A reference the client used before is a per-item
error (63) in a bulk request, as the seed says, and costs nothing; any invalid item rejects
the whole request (nothing stored or charged).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.accounts.service import Caller
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.connectors.hlr.base import SENT
from tidings.errors import (
    Conflict,
    InsufficientFunds,
    InvalidRequest,
    NotFound,
    PricingError,
    RoutingError,
)
from tidings.hlr.models import HlrLookup
from tidings.hlr.repository import HlrRepository
from tidings.messages.acceptance import RecipientChecks
from tidings.messages.catalog import Catalog
from tidings.numbering import Destination
from tidings.routing.service import load_route_table

HLR = "hlr"


@dataclass(frozen=True, slots=True)
class HlrItem:
    msisdn: str
    reference: str
    tariff: int | None = None  # None: the client's own tariff
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class HlrRequest:
    items: Sequence[HlrItem]
    is_batch: bool = False
    source: str = "api"


@dataclass(frozen=True, slots=True)
class PricedLookup:
    index: int
    item: HlrItem
    destination: Destination
    tariff: int
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class PreparedHlr:
    caller: Caller
    request: HlrRequest
    items: list[PricedLookup]


@dataclass(frozen=True, slots=True)
class AcceptedLookup:
    reference: str
    id: int
    price: Decimal
    currency: str
    duplicate: bool = False  # the reference was used before: nothing created, nothing charged


@dataclass(frozen=True, slots=True)
class HlrAcceptance:
    items: list[AcceptedLookup]
    total_price: Decimal
    currency: str


def _at(request: HlrRequest, index: int, what: str) -> str:
    return f"payload[{index}]: {what}" if request.is_batch else what


def prepare_hlr(
    catalog: Catalog, caller: Caller, request: HlrRequest, max_batch_size: int
) -> PreparedHlr:
    """Validate and price a request against a catalog snapshot (no database)."""
    if not request.items:
        raise InvalidRequest("the payload holds no HLR requests", reason="bad_payload")
    if len(request.items) > max_batch_size:
        raise InvalidRequest(
            f"{len(request.items)} HLR requests exceed the batch maximum of {max_batch_size}",
            reason="batch_too_large",
        )
    checks = RecipientChecks()
    priced: list[PricedLookup] = []
    currency: str | None = None
    for index, item in enumerate(request.items):
        where = f"payload[{index}]: " if request.is_batch else ""
        destination = checks.destination(item.msisdn, where)
        tariff = caller.tariff if item.tariff is None else item.tariff
        prices = catalog.price_list(HLR, tariff)
        if not prices:
            raise PricingError(f"tariff {tariff} has no HLR prices", reason="inactive_tariff")
        unit = prices.get(destination.iso)
        if unit is None:
            raise PricingError(
                _at(request, index, f"no HLR price to {destination.iso} in tariff {tariff}"),
                reason="no_price",
            )
        if currency is None:
            currency = unit.currency
        elif unit.currency != currency:
            raise PricingError("the request's prices mix currencies", reason="mixed_currency")
        priced.append(PricedLookup(index, item, destination, tariff, unit.price, unit.currency))
    return PreparedHlr(caller, request, priced)


async def accept_hlr(session: AsyncSession, clock: Clock, prepared: PreparedHlr) -> HlrAcceptance:
    """Store a prepared request in the caller's transaction; raises when it is refused whole.

    Single requests with a used reference are refused (Conflict); in bulk requests such items
    come back marked `duplicate`, with the id the reference already has.
    """
    client_id = prepared.caller.client_id
    repo = HlrRepository(session)
    references = {p.item.reference for p in prepared.items}
    taken = await repo.references_taken(client_id, references)
    if not prepared.request.is_batch and taken:
        raise Conflict(
            f"reference {prepared.items[0].item.reference!r} is used already",
            reason="duplicate_reference",
        )
    fresh: list[PricedLookup] = []
    first_of: dict[str, int] = {}
    for item in prepared.items:
        reference = item.item.reference
        if reference in taken or reference in first_of:
            continue
        first_of[reference] = len(fresh)
        fresh.append(item)
    routes = await load_route_table(session, HLR)
    providers: list[int] = []
    for item in fresh:
        provider = routes.choose(item.destination.msisdn, item.destination.iso)
        if provider is None:
            raise RoutingError(
                _at(prepared.request, item.index, f"no HLR route to {item.destination.iso}"),
                reason="no_route",
            )
        providers.append(provider)
    total = sum((item.price for item in fresh), Decimal(0))
    currency = prepared.items[0].currency
    now = clock.now()
    ids: list[int] = []
    if fresh:
        if total and not await ClientRepository(session).debit_if_covered(client_id, total):
            raise InsufficientFunds(f"the balance does not cover {total} {currency}")
        try:
            ids = await repo.add_many(
                [
                    _row(client_id, item, provider, prepared.request.source, now)
                    for item, provider in zip(fresh, providers, strict=True)
                ]
            )
        except IntegrityError:  # another request took a reference since we looked
            raise Conflict(
                "a reference of the request was used meanwhile", reason="duplicate_reference"
            ) from None
        if total:
            await LedgerRepository(session).add_many(
                [(client_id, -total, "charge", f"hlr:{ids[0]}")], now
            )
    results: list[AcceptedLookup] = []
    for item in prepared.items:
        reference = item.item.reference
        position = first_of.get(reference)
        if reference in taken:
            results.append(AcceptedLookup(reference, taken[reference], Decimal(0), currency, True))
        elif position is not None and fresh[position] is item:
            results.append(AcceptedLookup(reference, ids[position], item.price, item.currency))
        else:
            assert position is not None
            results.append(AcceptedLookup(reference, ids[position], Decimal(0), currency, True))
    return HlrAcceptance(results, total, currency)


def _row(
    client_id: int, item: PricedLookup, provider_id: int, source: str, now: datetime
) -> dict[str, object]:
    return {
        "client_id": client_id,
        "msisdn": item.destination.msisdn,
        "country": item.destination.iso,
        "reference": item.item.reference,
        "tariff": item.tariff,
        "price": item.price,
        "currency": item.currency,
        "source": source,
        "callback_url": item.item.callback_url,
        "status": SENT,
        "network": None,
        "ported": False,
        "roaming": False,
        "provider_id": provider_id,
        "provider_ref": None,
        "created_at": now,
        "sent_at": None,
        "status_at": now,
        "due_at": now,
        "locked_until": None,
        "attempts": 0,
        "last_error": None,
    }


def fake_hlr_acceptance(prepared: PreparedHlr) -> HlrAcceptance:
    """What a test key gets: the request validated and priced, random ids, nothing stored."""
    rng = random.Random()
    items = [
        AcceptedLookup(p.item.reference, rng.randrange(10**7, 10**8), p.price, p.currency)
        for p in prepared.items
    ]
    total = sum((item.price for item in items), Decimal(0))
    return HlrAcceptance(items, total, prepared.items[0].currency)


async def find_lookup(session: AsyncSession, client_id: int, lookup_id: int) -> HlrLookup:
    lookup = await HlrRepository(session).get(client_id, lookup_id)
    if lookup is None:
        raise NotFound(f"no HLR request {lookup_id}", reason="hlr_not_found")
    return lookup


async def find_lookup_by_reference(
    session: AsyncSession, client_id: int, reference: str
) -> HlrLookup:
    lookup = await HlrRepository(session).get_by_reference(client_id, reference)
    if lookup is None:
        raise NotFound(f"no HLR request with reference {reference!r}", reason="hlr_not_found")
    return lookup
