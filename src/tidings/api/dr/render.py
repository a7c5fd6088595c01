"""Seed 000's simple and advanced delivery reports for one message.

Today every message goes over one channel, SMS, so the advanced report holds one report
and one channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.api.dr.statuses import HYBER_STATUS, PLATFORM, SMS_CHANNEL
from tidings.messages.models import Message
from tidings.messages.status import Status


def reached_channel(message: Message) -> bool:
    """Whether a supplier took the message, or saw and refused it at submission."""
    return message.time_sent is not None or Status(message.status) is Status.REJECTED


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def simple_report(message: Message, last_change: datetime) -> dict[str, Any]:
    """`last_change`: when the message took its current status."""
    status = Status(message.status)
    code = HYBER_STATUS[status]
    return {
        "phone_number": message.msisdn,
        "last_partner": SMS_CHANNEL if reached_channel(message) else PLATFORM,
        "message_id": str(message.id),
        "extra_id": message.reference,
        "time": epoch_ms(last_change),
        "status": code.status,
        "substatus": code.substatus,
        "hyber_status": code.hyber_status,
        "total_sms_parts": message.parts,
        "delivered_sms_parts": message.parts if status is Status.DELIVERED else 0,
    }


def advanced_report(message: Message, last_change: datetime) -> dict[str, Any]:
    status = Status(message.status)
    started_at = message.send_at or message.time_in
    return {
        "reports": [_channel_report(simple_report(message, last_change))],
        "started": reached_channel(message),
        "processing": not status.is_final,
        "delivered_via": SMS_CHANNEL if status is Status.DELIVERED else None,
        "channels": [
            {
                "channel": SMS_CHANNEL,
                "ttl": int((message.expires_at - started_at).total_seconds()),
            }
        ],
    }


_REPORT_ORDER = (
    "phone_number",
    "message_id",
    "extra_id",
    "time",
    "last_partner",
    "status",
    "substatus",
    "hyber_status",
    "total_sms_parts",
    "delivered_sms_parts",
)


def _channel_report(simple: dict[str, Any]) -> dict[str, Any]:
    """The seed lists a channel's report fields in this order."""
    return {key: simple[key] for key in _REPORT_ORDER}
