"""Viber → SMS fallback: the SMS alternative goes out when Viber cannot deliver.

Called by `apply_changes` in the transaction that records a Viber message's final status.
Any final status but delivered/read — not a Viber user, undelivered, expired (its TTL
passed with no final report), rejected or failed at submission — starts the fallback of a
message that carries an SMS alternative: a second `messages` row (channel sms, `parent_id`
the Viber message) with its own dispatch job, priced and routed as any SMS at that moment,
and charged now. From there it is an ordinary SMS: dispatched by its supplier's lane,
refunded if it never leaves, reported on its own. Statuses move once to final under a row
lock, so a fallback starts at most once per Viber message.

When the SMS can no longer go (its price or route was removed since acceptance, or the
balance does not cover it) the fallback row is stored `failed` with the reason and nothing
is charged, so reports (webhooks included) still show what happened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.delivery.repository import DispatchRepository
from tidings.messages.catalog import Catalog, load_catalog
from tidings.messages.changes import AppliedChange, MessageRecord, StatusChange
from tidings.messages.encoding import segment
from tidings.messages.repository import MessageRepository
from tidings.messages.status import DELIVERED_STATUSES, FINAL_STATUSES, Status
from tidings.optouts.repository import OptOutRepository
from tidings.viber.models import ViberContent
from tidings.viber.repository import VIBER, ViberRepository
from tidings.webhooks.service import enqueue_reports

SMS = "sms"
FALLBACK_TRIGGERS = FINAL_STATUSES - DELIVERED_STATUSES


@dataclass(slots=True)
class _Leg:
    viber: MessageRecord
    content: ViberContent
    row: dict[str, Any]
    error: str | None = None


async def start_fallbacks(
    session: AsyncSession, clock: Clock, applied: Sequence[AppliedChange]
) -> list[int]:
    """Create the SMS of every Viber message that just failed with an alternative; their ids."""
    failed = {
        a.message.id: a.message
        for a in applied
        if a.message.channel == VIBER and a.change.status in FALLBACK_TRIGGERS
    }
    if not failed:
        return []
    viber = ViberRepository(session)
    contents = await viber.awaiting_fallback(sorted(failed))
    if not contents:
        return []
    now = clock.now()
    catalog = await load_catalog(session, (SMS,))
    legs = [_leg(catalog, failed[c.message_id], c, now) for c in contents]
    await _refuse_opted_out(session, legs, now)
    await _charge(session, legs)
    messages = MessageRepository(session)
    # A leg that can go is inserted into the dispatch queue (`due_at` on its row).
    ids = await messages.insert_many(
        [{**leg.row, "due_at": now if leg.error is None else None} for leg in legs]
    )
    await viber.link_fallbacks(
        [(leg.viber.id, sms_id) for leg, sms_id in zip(legs, ids, strict=True)]
    )
    sent = [(sms_id, leg) for sms_id, leg in zip(ids, legs, strict=True) if leg.error is None]
    DispatchRepository(session).enqueued({leg.row["supplier_id"] for _, leg in sent})
    await LedgerRepository(session).add_many(
        [
            (leg.viber.client_id, -leg.row["price"], "charge", f"message:{sms_id}")
            for sms_id, leg in sent
        ],
        now,
    )
    unsent = [(sms_id, leg) for sms_id, leg in zip(ids, legs, strict=True) if leg.error]
    await messages.add_events(
        [
            {"message_id": sms_id, "status": Status.FAILED.value, "detail": leg.error, "at": now}
            for sms_id, leg in unsent
        ]
    )
    # The client hears of an SMS that could not go like of any failed message.
    await enqueue_reports(
        session,
        clock,
        [
            AppliedChange(
                message=MessageRecord(id=sms_id, **leg.row),
                previous=Status.QUEUED,
                change=StatusChange(sms_id, Status.FAILED, now, detail=leg.error),
            )
            for sms_id, leg in unsent
        ],
    )
    return ids


def _leg(catalog: Catalog, viber: MessageRecord, content: ViberContent, now: datetime) -> _Leg:
    assert content.sms_text is not None and content.sms_originator is not None
    segmentation = segment(content.sms_text)
    validity = content.sms_validity_seconds or 72 * 3600
    row: dict[str, Any] = {
        "client_id": viber.client_id,
        "task_id": None,
        "channel": SMS,
        "source": viber.source,
        "msisdn": viber.msisdn,
        "country": viber.country,
        "reference": None,  # the client's reference names the Viber message
        "originator": content.sms_originator,
        "body": content.sms_text,
        "encoding": segmentation.encoding.value,
        "parts": segmentation.parts,
        "tariff": viber.tariff,
        "price": Decimal(0),
        "currency": viber.currency,
        "status": Status.QUEUED.value,
        "status_detail": None,
        "callback_url": viber.callback_url,
        "supplier_id": None,
        "send_at": None,
        "expires_at": now + timedelta(seconds=validity),
        "time_in": now,
        "time_dr": None,
        "parent_id": viber.id,
    }
    leg = _Leg(viber, content, row)
    unit = catalog.price_list(SMS, viber.tariff).get(viber.country)
    supplier_id = catalog.route_table(SMS).choose(viber.msisdn, viber.country)
    if unit is None:
        _fail(leg, f"no SMS price to {viber.country} in tariff {viber.tariff}", now)
    elif supplier_id is None:
        _fail(leg, f"no SMS route to {viber.country}", now)
    else:
        row["price"] = unit.price * segmentation.parts
        row["currency"] = unit.currency
        row["supplier_id"] = supplier_id
    return leg


def _fail(leg: _Leg, reason: str, now: datetime) -> None:
    leg.error = f"fallback SMS not sent: {reason}"
    leg.row.update(
        status=Status.FAILED.value,
        status_detail=leg.error,
        time_dr=now,
        price=Decimal(0),
        supplier_id=None,
    )


async def _refuse_opted_out(session: AsyncSession, legs: list[_Leg], now: datetime) -> None:
    """A number that opted out after its Viber message was accepted gets no SMS either
    (docs/optouts.md): the leg is stored failed, not charged. One query for the round."""
    open_legs = [leg for leg in legs if leg.error is None]
    listed = await OptOutRepository(session).listed(
        {leg.viber.client_id for leg in open_legs}, {leg.viber.msisdn for leg in open_legs}
    )
    for leg in open_legs:
        if (leg.viber.client_id, leg.viber.msisdn) in listed:
            _fail(leg, "the number opted out of this client's messages", now)


async def _charge(session: AsyncSession, legs: list[_Leg]) -> None:
    """Debit each client for its fallback SMS; one that can't pay gets failed legs."""
    clients = ClientRepository(session)
    by_client: dict[int, list[_Leg]] = defaultdict(list)
    for leg in legs:
        if leg.error is None:
            by_client[leg.viber.client_id].append(leg)
    for client_id, owed in by_client.items():
        total = sum((leg.row["price"] for leg in owed), Decimal(0))
        if await clients.debit_if_covered(client_id, total):
            continue
        # Not all of them: as many as the balance covers, in order.
        for leg in owed:
            if not await clients.debit_if_covered(client_id, leg.row["price"]):
                _fail(leg, "the balance does not cover it", leg.row["time_in"])
