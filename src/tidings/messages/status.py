"""The status machine every channel and API maps onto.

    accepted ─┬─> scheduled ─┐
              └─> queued ────┴─> sent ──> unknown ──> (final)
                                  └──────────────────> (final)
    final: delivered, undelivered, expired, rejected, failed,
           read, not_viber_user (Viber)

Statuses only move forward (by rank). A final status is terminal: the first final report
wins, duplicates and late intermediate reports (a late "enroute" after "delivered") change
nothing. The one exception is Viber's "read" (seen), which may follow "delivered": it is
delivery plus the recipient opening it, and the last thing a Viber report says.
Each API adapter translates these names into its own vocabulary in one table.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENT = "sent"  # handed to a supplier, en route
    UNKNOWN = "unknown"  # the supplier lost track; a final report may still come
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FAILED = "failed"  # we could not hand it to any supplier
    READ = "read"  # Viber: delivered and seen by the recipient
    NOT_VIBER_USER = "not_viber_user"  # Viber: the number has no Viber account

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.EXPIRED,
        Status.REJECTED,
        Status.FAILED,
        Status.READ,
        Status.NOT_VIBER_USER,
    }
)
# Final statuses that mean the recipient got the message.
DELIVERED_STATUSES = frozenset({Status.DELIVERED, Status.READ})
PENDING_STATUSES = frozenset({Status.ACCEPTED, Status.SCHEDULED, Status.QUEUED})
IN_FLIGHT_STATUSES = frozenset({Status.SENT, Status.UNKNOWN})

_RANK = {
    Status.ACCEPTED: 0,
    Status.SCHEDULED: 1,
    Status.QUEUED: 1,
    Status.SENT: 3,
    Status.UNKNOWN: 4,
    **dict.fromkeys(FINAL_STATUSES, 9),
}


def can_transition(current: Status, new: Status) -> bool:
    """Whether a report of `new` may replace `current` (monotonic, finals terminal)."""
    if current in FINAL_STATUSES:
        return current is Status.DELIVERED and new is Status.READ
    return _RANK[new] > _RANK[current]
