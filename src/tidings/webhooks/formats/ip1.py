"""Seed 003 (iP.1): the Swedish delivery-report payload, POSTed as JSON.

`code` follows iP.1's published groups: 1xx not final, 2xx ended as requested, 4xx the
message itself was refused, 5xx undeliverable or outside our control. iP.1 publishes only
some codes; the 4xx/5xx rows marked "ours" are Tidings' own, in the same groups.
`duration` is, despite its name, the seed's "is this status final" flag: 1 on the last
report for a message, else 0.
"""

from __future__ import annotations

from datetime import UTC

from tidings.messages.status import Status
from tidings.webhooks.formats import JSON, Report, WebhookFormat, dump_json

IP1_CODE: dict[Status, int] = {
    Status.ACCEPTED: 101,  # Accepted
    Status.QUEUED: 102,  # Queued
    Status.SCHEDULED: 102,  # Queued: waiting for its send time in our queue
    Status.SENT: 111,  # DeliveredToGateway: handed to the supplier
    Status.DELIVERED: 201,  # DeliveredToHandset
    Status.EXPIRED: 202,  # Expired
    Status.REJECTED: 401,  # ours: Rejected (the message was refused)
    Status.UNDELIVERED: 501,  # ours: Undeliverable (the network could not deliver it)
    Status.FAILED: 502,  # ours: Failed (no supplier could take it)
    Status.UNKNOWN: 503,  # ours: Unknown (the supplier lost track; not final)
    Status.READ: 205,  # ours: Read (Viber: delivered and seen by the recipient)
    Status.NOT_VIBER_USER: 504,  # ours: NotViberUser (Viber could not reach the number)
}


def render(report: Report) -> str:
    message = report.message
    created = report.at.astimezone(UTC).isoformat(timespec="milliseconds")
    body: dict[str, object] = {
        "messageId": str(message.id),
        "batchId": None if message.task_id is None else str(message.task_id),
        "recipient": message.msisdn,
        "code": IP1_CODE[report.status],
        "duration": 1 if report.status.is_final else 0,
        "created": created.replace("+00:00", "Z"),
        "segments": message.parts,
        # A JSON number, as in the seed's example (0.082); prices have 6 decimals at most.
        "price": float(message.price),
        "currency": message.currency.lower(),
        "reference": message.reference,
    }
    # Viber messages and their fallback SMS name their channel (docs/viber.md).
    if message.channel == "viber":
        body["channel"] = "viber"
    if message.parent_id is not None:
        body["channel"] = "sms"
        body["parentMessageId"] = str(message.parent_id)
    return dump_json(body)


FORMAT = WebhookFormat(name="ip1", content_type=JSON, render=render)
