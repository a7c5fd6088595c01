"""Seed 000's simple and advanced delivery reports for one message.

An SMS goes over one channel: one report, one channel. A Viber message with an SMS
alternative lists both channels (each with its TTL); once the SMS was sent, its report
follows Viber's, both under the Viber message's id and extra_id, and `delivered_via` says
which channel reached the recipient (docs/viber.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.api.dr.statuses import PLATFORM, SMS_CHANNEL, VIBER_CHANNEL, hyber_status
from tidings.messages.changes import MessageData
from tidings.messages.models import Message
from tidings.messages.status import DELIVERED_STATUSES, Status


@dataclass(frozen=True, slots=True)
class Fallback:
    """The SMS sent for a Viber message, when it took its current status, and its TTL."""

    message: Message
    last_change: datetime


@dataclass(frozen=True, slots=True)
class Channels:
    """A Viber message's channel TTLs: Viber's, and its SMS alternative's (None: none)."""

    viber_ttl: int
    sms_ttl: int | None
    fallback: Fallback | None = None


def reached_channel(message: MessageData) -> bool:
    """Whether a supplier took the message, or saw and refused it at submission."""
    return message.time_sent is not None or Status(message.status) is Status.REJECTED


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def simple_report(message: MessageData, last_change: datetime) -> dict[str, Any]:
    """`last_change`: when the message took its current status."""
    status = Status(message.status)
    channel = VIBER_CHANNEL if message.channel == VIBER_CHANNEL else SMS_CHANNEL
    code = hyber_status(status, channel)
    report: dict[str, Any] = {
        "phone_number": message.msisdn,
        "last_partner": channel if reached_channel(message) else PLATFORM,
        # A fallback SMS is part of its Viber message: reported under that message's id.
        "message_id": str(message.parent_id or message.id),
        "extra_id": message.reference,
        "time": epoch_ms(last_change),
        "status": code.status,
        "substatus": code.substatus,
        "hyber_status": code.hyber_status,
    }
    if channel == SMS_CHANNEL:
        report["total_sms_parts"] = message.parts
        report["delivered_sms_parts"] = message.parts if status is Status.DELIVERED else 0
    return report


def simple_viber_report(
    message: Message, last_change: datetime, channels: Channels
) -> dict[str, Any]:
    """The simple report of a Viber message is its last channel's: the SMS once it was sent."""
    if channels.fallback is None:
        return simple_report(message, last_change)
    return _as_part_of(message, simple_report(*_leg(channels.fallback)))


def advanced_viber_report(
    message: Message, last_change: datetime, channels: Channels
) -> dict[str, Any]:
    status = Status(message.status)
    reports = [_channel_report(simple_report(message, last_change))]
    listed = [{"channel": VIBER_CHANNEL, "ttl": channels.viber_ttl}]
    if channels.sms_ttl is not None:
        listed.append({"channel": SMS_CHANNEL, "ttl": channels.sms_ttl})
    delivered_via = VIBER_CHANNEL if status in DELIVERED_STATUSES else None
    processing = not status.is_final
    if channels.fallback is not None:
        sms = channels.fallback.message
        reports.append(
            _channel_report(_as_part_of(message, simple_report(*_leg(channels.fallback))))
        )
        if Status(sms.status) is Status.DELIVERED:
            delivered_via = SMS_CHANNEL
        processing = processing or not Status(sms.status).is_final
    return {
        "reports": reports,
        "started": reached_channel(message),
        "processing": processing,
        "delivered_via": delivered_via,
        "channels": listed,
    }


def _leg(fallback: Fallback) -> tuple[Message, datetime]:
    return fallback.message, fallback.last_change


def _as_part_of(viber: Message, report: dict[str, Any]) -> dict[str, Any]:
    return {**report, "message_id": str(viber.id), "extra_id": viber.reference}


def advanced_report(message: MessageData, last_change: datetime) -> dict[str, Any]:
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
    """The seed lists a channel's report fields in this order (SMS parts only for SMS)."""
    return {key: simple[key] for key in _REPORT_ORDER if key in simple}
