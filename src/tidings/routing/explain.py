"""`tidings routes explain`: which supplier a message would go to, and why.

It runs the very code acceptance runs (`RoutingPlan.decide`, with the HLR network when the
route asks for one), on a fresh snapshot, so its answer is the choice a message accepted now
would get (docs/routing.md; a test checks them against each other for 1,000 numbers).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.service import require_client
from tidings.billing.repository import PriceRepository
from tidings.billing.service import MESSAGE_TYPES
from tidings.clock import Clock
from tidings.errors import InvalidRequest
from tidings.hlr.repository import HlrRepository
from tidings.messages.acceptance import HLR_ROUTING_TTL
from tidings.numbering import InvalidMsisdn, parse_msisdn
from tidings.routing.cache import default_networks, load_plans
from tidings.routing.plan import Candidate, RoutingPlan


async def explain_route(
    session: AsyncSession, clock: Clock, *, client_id: int, msisdn: str, type_: str = "sms"
) -> dict[str, Any]:
    if type_ not in MESSAGE_TYPES:
        raise InvalidRequest(f"type must be one of {', '.join(MESSAGE_TYPES)}")
    client = await require_client(session, client_id)
    try:
        destination = parse_msisdn(msisdn)
    except InvalidMsisdn as error:
        raise InvalidRequest(f"invalid msisdn: {error.reason}", reason="bad_msisdn") from None
    plan = (await load_plans(session, (type_,), networks=default_networks()))[type_]
    hlr_network = None
    if plan.wants_hlr(destination.msisdn, destination.iso):
        found = await HlrRepository(session).recent_networks(
            [destination.msisdn], clock.now() - HLR_ROUTING_TTL
        )
        hlr_network = found.get(destination.msisdn)
    decision = plan.decide(destination, hlr_network=hlr_network, explain=True)
    prices = await PriceRepository(session).for_tariff(type_, client.tariff)
    price = next((p for p in prices if p.country == destination.iso), None)
    return {
        "msisdn": destination.msisdn,
        "country": destination.iso,
        "carrier": destination.carrier,
        "network": decision.network,
        "network_from": "hlr" if hlr_network and decision.network == hlr_network else "numbering",
        "client_price": None if price is None else str(price.price),
        "price_currency": None if price is None else price.currency,
        "chosen": None if decision.supplier_id is None else plan.name(decision.supplier_id),
        "chosen_id": decision.supplier_id,
        "reason": decision.reason,
        "candidates": [_candidate(plan, c) for c in decision.candidates],
    }


def _candidate(plan: RoutingPlan, candidate: Candidate) -> dict[str, Any]:
    return {
        "supplier": plan.name(candidate.supplier_id),
        "supplier_id": candidate.supplier_id,
        "route_id": candidate.route_id,
        "strategy": candidate.strategy,
        "priority": candidate.priority,
        "cost": None if candidate.cost is None else str(candidate.cost.cost),
        "currency": None if candidate.cost is None else candidate.cost.currency,
        "health": plan.health[candidate.supplier_id].state
        if candidate.supplier_id in plan.health
        else "closed",
        "in_routing": candidate.up,
        "throughput": candidate.throughput,
        "at_limit": candidate.at_limit,
        "success_rate": round(candidate.success_rate, 4),
    }
