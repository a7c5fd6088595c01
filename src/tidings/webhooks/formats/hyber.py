"""Seed 000 (Hyber/GMS): its simple delivery report, POSTed as JSON.

The numeric codes are the DR query API's table (`tidings.api.dr.statuses`), so a report
pushed here and the same message queried there always agree.
"""

from __future__ import annotations

from tidings.api.dr.statuses import HYBER_STATUS
from tidings.messages.models import Message
from tidings.messages.status import Status
from tidings.webhooks.formats import JSON, Report, WebhookFormat, dump_json

# Seed 000's `last_partner` while a message is still on the platform (or was stopped there).
PLATFORM = "hyber"


def last_partner(message: Message) -> str:
    """The channel once the message was handed to a supplier, "hyber" before (or never)."""
    return message.channel if message.time_sent is not None else PLATFORM


def render(report: Report) -> str:
    message = report.message
    # Unpacked, not read by name: the table's rows are (status, substatus, hyber_status).
    status, substatus, hyber_status = HYBER_STATUS[report.status]
    return dump_json(
        {
            "phone_number": message.msisdn,
            "last_partner": last_partner(message),
            "message_id": str(message.id),
            "extra_id": message.reference,
            "time": int(report.at.timestamp() * 1000),
            "status": status,
            "substatus": substatus,
            "hyber_status": hyber_status,
            "total_sms_parts": message.parts,
            "delivered_sms_parts": message.parts if report.status is Status.DELIVERED else 0,
        }
    )


FORMAT = WebhookFormat(name="hyber", content_type=JSON, render=render)
