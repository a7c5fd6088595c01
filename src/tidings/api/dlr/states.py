"""The Smartswitch `message_state` words and the status each one moves a message to.

One table (documented in docs/dlr-api.md). `accepted` is not final here: in the Smartswitch
flow it is the supplier's SMSC saying it took the message, which says nothing about the
handset yet; treating it as `sent` lets the final report that follows still land, where a
final status would have swallowed it (statuses only move forward).
"""

from __future__ import annotations

from tidings.messages.status import Status

MESSAGE_STATE: dict[str, Status] = {
    "enroute": Status.SENT,
    "accepted": Status.SENT,
    "unknown": Status.UNKNOWN,
    "delivered": Status.DELIVERED,
    "expired": Status.EXPIRED,
    "undeliverable": Status.UNDELIVERED,
    "rejected": Status.REJECTED,
}
