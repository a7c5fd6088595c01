"""Seed 004's status words for our status machine (one table, documented in docs/api.md)."""

from __future__ import annotations

from tidings.messages.status import Status

SEED_004_STATUS: dict[Status, str] = {
    Status.ACCEPTED: "accepted",
    Status.SCHEDULED: "scheduled",
    Status.QUEUED: "accepted",
    Status.SENT: "sent",
    Status.UNKNOWN: "unknown",
    Status.DELIVERED: "delivered",
    Status.UNDELIVERED: "undelivered",
    Status.EXPIRED: "expired",
    Status.REJECTED: "rejected",
    Status.FAILED: "failed",
    # Viber's words, as in seed 004's status list (Read, not-viber-user).
    Status.READ: "read",
    Status.NOT_VIBER_USER: "not-viber-user",
}
