"""Seed 000's (Hyber/GMS dr-v2) status codes for our status machine, in one table.

`status` is the simplified class (-1 not final yet, 2 delivered, 3 not delivered),
`substatus` = class × 10 + detail, `hyber_status` = substatus × 1000 + reason. Only
23011 (SMS delivered), 23043 (Viber delivered) and 35015 (expired) come from the seed's
examples; every other code here is Tidings' own, in the same pattern (documented in
docs/dr-api.md). The webhook payloads in seed 000's format use this table too.
"""

from __future__ import annotations

from typing import NamedTuple

from tidings.messages.status import Status


class HyberStatus(NamedTuple):
    status: int
    substatus: int
    hyber_status: int


HYBER_STATUS: dict[Status, HyberStatus] = {
    Status.ACCEPTED: HyberStatus(-1, 11, 11001),
    Status.QUEUED: HyberStatus(-1, 11, 11001),
    Status.SCHEDULED: HyberStatus(-1, 11, 11001),
    Status.SENT: HyberStatus(-1, 12, 12011),
    Status.UNKNOWN: HyberStatus(-1, 13, 13011),
    Status.DELIVERED: HyberStatus(2, 23, 23011),
    Status.EXPIRED: HyberStatus(3, 35, 35015),
    Status.UNDELIVERED: HyberStatus(3, 34, 34011),
    Status.REJECTED: HyberStatus(3, 33, 33011),
    Status.FAILED: HyberStatus(3, 36, 36011),
    # Viber (docs/viber.md): seen is delivered plus a detail; not a Viber user is a
    # not-delivered detail of its own.
    Status.READ: HyberStatus(2, 24, 24033),
    Status.NOT_VIBER_USER: HyberStatus(3, 37, 37033),
}

# The channel name seed 000 uses for SMS, and the one for "still on the platform".
SMS_CHANNEL = "sms"
VIBER_CHANNEL = "viber"
PLATFORM = "hyber"

# Delivered over Viber: seed 000's Viber example is 2 / 23 / 23043 with `last_partner` viber.
VIBER_DELIVERED = HyberStatus(2, 23, 23043)


def hyber_status(status: Status, channel: str) -> HyberStatus:
    if channel == VIBER_CHANNEL and status is Status.DELIVERED:
        return VIBER_DELIVERED
    return HYBER_STATUS[status]
