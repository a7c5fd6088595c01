"""What runs on every new inbound message, in the transaction that stored it: the opt-out
keywords (STOP / START, docs/optouts.md) and the client's confirmation reply to them.

The confirmation is an ordinary SMS of the client's — a reply to the inbound message, so it
goes out from the number that received the STOP and through the supplier it came in by,
charged at the client's tariff — accepted in the same transaction: if the inbound message is
rolled back (the supplier will resend it), so is its confirmation. It is the one message the
gateway sends to a number that has just opted out (the opt-out check is skipped for it, as
carriers' codes of conduct allow exactly one confirmation). A confirmation that cannot be
sent (the client's balance, a sender its route refuses) is logged and skipped: the opt-out
itself stands.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.accounts.service import Caller, KeyKind
from tidings.clock import Clock
from tidings.config import Settings
from tidings.errors import TidingsError
from tidings.inbound.replies import pin_suppliers, resolve_replies
from tidings.inbound.service import InboundHook, StoredInbound
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest, prepare_sms
from tidings.messages.catalog import load_catalog
from tidings.messages.storing import write_accepted
from tidings.optouts.keywords import KeywordSet
from tidings.optouts.service import OptOutOutcome, apply_inbound_keyword

log = logging.getLogger("tidings.inbound")


def after_inbound_stored(settings: Settings) -> tuple[InboundHook, ...]:
    """The hooks every way in (`DeliveryWorker.inbound`, `POST /api/mo`, the sweeper's
    `give_up_parts`) passes to `receive`: run on new messages after they are stored, matched
    to their client and passed on, in the same transaction. Built once at start."""
    limits = Limits(max_batch_size=settings.max_batch_size, max_parts=settings.max_sms_parts)
    return (optout_keywords(settings.keywords(), limits),)


def optout_keywords(keywords: KeywordSet, limits: Limits) -> InboundHook:
    async def hook(session: AsyncSession, clock: Clock, new: Sequence[StoredInbound]) -> None:
        confirmations: list[tuple[StoredInbound, OptOutOutcome]] = []
        for message in new:
            if message.client_id is None:  # unrouted: no client whose list it could be
                continue
            outcome = await apply_inbound_keyword(
                session,
                client_id=message.client_id,
                msisdn=message.sender,
                text=message.text,
                keywords=keywords,
                now=clock.now(),
            )
            if outcome is not None and outcome.reply:
                confirmations.append((message, outcome))
        for message, outcome in confirmations:
            await _confirm(session, clock, limits, message, outcome)

    return hook


async def _confirm(
    session: AsyncSession,
    clock: Clock,
    limits: Limits,
    message: StoredInbound,
    outcome: OptOutOutcome,
) -> None:
    assert outcome.reply is not None and message.client_id is not None
    client = await ClientRepository(session).get(message.client_id)
    if client is None:
        return
    caller = Caller(client_id=client.id, key_kind=KeyKind.LIVE, tariff=client.tariff)
    request = SmsRequest(
        "phone",
        [SmsItem(outcome.msisdn, None, "", outcome.reply, reply_to=message.id)],
        source="optout",
    )
    try:
        request, pins = await resolve_replies(session, client.id, request)
        prepared = pin_suppliers(
            prepare_sms(await load_catalog(session, ("sms",)), caller, request, limits), pins
        )
        [result] = await write_accepted(session, clock, [prepared], check_optouts=False)
    except TidingsError as error:
        result = error
    if isinstance(result, TidingsError):
        log.warning(
            "opt-out confirmation to %s for client %d not sent: %s",
            outcome.msisdn,
            client.id,
            result,
        )
