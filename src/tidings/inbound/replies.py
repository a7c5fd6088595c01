"""Replies: an SMS that names the inbound message it answers (`reply_to`).

It goes to the inbound message's sender (unless the request names a number), from the
number that received it (always: a reply from another originator would not reach the same
conversation), through the supplier it came from while that supplier is enabled; otherwise
routing decides, as for any SMS.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.errors import InvalidRequest
from tidings.inbound.repository import reply_targets
from tidings.messages.acceptance import PreparedSms, SmsRequest


async def resolve_replies(
    session: AsyncSession, client_id: int, request: SmsRequest
) -> tuple[SmsRequest, dict[int, int]]:
    """The request with its replies' addresses filled in, and the supplier each reply item
    (by index) is pinned to. Raises InvalidRequest (seed 004 code 7) for an id that is not
    one of the client's inbound messages."""
    wanted = {item.reply_to for item in request.items if item.reply_to is not None}
    if not wanted:
        return request, {}
    targets = await reply_targets(session, client_id, wanted)
    items = []
    pins: dict[int, int] = {}
    for index, item in enumerate(request.items):
        if item.reply_to is None:
            items.append(item)
            continue
        target = targets.get(item.reply_to)
        if target is None:
            where = f"phones[{index}]: " if request.is_batch else ""
            raise InvalidRequest(
                f"{where}reply_to {item.reply_to} is not one of your inbound messages",
                reason="invalid",
                field="reply_to",
            )
        items.append(
            replace(item, msisdn=item.msisdn or target.sender, originator=target.recipient)
        )
        if target.supplier_id is not None:
            pins[index] = target.supplier_id
    return replace(request, items=items), pins


def pin_suppliers(prepared: PreparedSms, suppliers: dict[int, int]) -> PreparedSms:
    """Send items (by index) through the given suppliers rather than routing's choice: a
    reply goes out through the supplier its inbound message came from. Routing's cost was
    for its own choice, so a pinned item's supplier cost is left unknown."""
    if not suppliers:
        return prepared
    items = [
        item
        if suppliers.get(item.index) in (None, item.supplier_id)
        else replace(item, supplier_id=suppliers[item.index], cost=None, cost_currency=None)
        for item in prepared.quote.items
    ]
    return replace(prepared, quote=replace(prepared.quote, items=items))
