"""Seed 004's answer shapes for a message and a task (also the seed-004 webhook payload)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.api.client.errors import DESCRIPTIONS, code_for
from tidings.api.client.statuses import SEED_004_STATUS
from tidings.billing.service import format_money
from tidings.messages.acceptance import Acceptance
from tidings.messages.changes import MessageData
from tidings.messages.models import Message
from tidings.messages.queries import TaskSummary
from tidings.messages.status import Status

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def format_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime(TIME_FORMAT)


def batch_result(accepted: Acceptance) -> list[dict[str, Any]]:
    """A batch's `result`, in the request's order: the seed's entry for each stored message,
    and, in the form the seed gives HLR's per-item errors, one for each number refused on
    its own (an opt-out, error 33), which has no id and is not charged."""
    entries: list[dict[str, Any]] = [
        {
            "reference": item.reference,
            "id": str(item.id),
            "error": "0",
            "price": format_money(item.price),
            "currency": item.currency,
        }
        for item in accepted.items
    ]
    for refused in sorted(accepted.refused, key=lambda r: r.index):
        code = code_for(refused.error)
        entries.insert(
            refused.index,
            {
                "reference": refused.reference,
                "msisdn": refused.msisdn,
                "error": str(code),
                "errorDescription": f"{DESCRIPTIONS[code]}: {refused.error.message}",
            },
        )
    return entries


def status_body(message: MessageData) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": "0",
        "id": str(message.id),
        "msisdn": message.msisdn,
        "reference": message.reference,
        "time_in": format_time(message.time_in),
        "time_sent": format_time(message.time_sent),
        "time_dr": format_time(message.time_dr),
        "status": SEED_004_STATUS[Status(message.status)],
        "price": format_money(message.price),
        "currency": message.currency,
    }
    # Viber messages and their fallback SMS say so (docs/viber.md); plain SMS stay as they were.
    if message.channel == "viber":
        body["message_type"] = "viber"
    if message.parent_id is not None:
        body["message_type"] = "sms"
        body["viber_id"] = str(message.parent_id)
    return body


def viber_status_body(message: Message, fallback: Message | None) -> dict[str, Any]:
    """`GET /viber/{id}`: the Viber message, with its SMS alternative once that was sent."""
    body = status_body(message)
    if fallback is not None:
        alternative = status_body(fallback)
        del alternative["error"]
        alternative["originator"] = fallback.originator
        body["alternativeSMS"] = alternative
    return body


def task_body(summary: TaskSummary) -> dict[str, Any]:
    task = summary.task
    return {
        "error": "0",
        "task_id": str(task.id),
        "originator": task.originator,
        "body": task.body,
        "validity": task.validity_hours,
        "total": str(summary.total),
        "sent": str(summary.sent),
        "delivered": str(summary.count(Status.DELIVERED)),
        "expired": str(summary.count(Status.EXPIRED)),
        "undeliverable": str(summary.count(Status.UNDELIVERED, Status.REJECTED, Status.FAILED)),
        "unknown": str(summary.count(Status.UNKNOWN)),
        "totalprice": format_money(task.total_price),
        "currency": task.currency,
    }
