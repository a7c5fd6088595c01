"""Delivery-report webhooks: what to send when a status moves, and what a reply means.

`enqueue_reports` runs inside the transaction that moved the statuses (called at the end of
`apply_changes`), so a report exists if and only if its status change was committed.
The worker (`tidings.webhooks.worker`) then sends the stored requests, in order per message,
retrying on the schedule each delivery was created with.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.clock import Clock
from tidings.errors import InvalidRequest
from tidings.messages.changes import AppliedChange, MessageRecord
from tidings.messages.repository import MessageRepository
from tidings.webhooks.formats import JSON, Report, WebhookFormat, hyber, ip1, ketchup, smartswitch
from tidings.webhooks.repository import (
    DELIVERED,
    FAILED,
    PENDING,
    ClaimedDelivery,
    Outcome,
    WebhookRepository,
    WebhookTarget,
    new_webhook_id,
)
from tidings.webhooks.schedules import DEFAULT_SCHEDULE, KETCHUP, PRESETS, parse_schedule
from tidings.webhooks.signing import new_secret

log = logging.getLogger("tidings.webhooks")

FORMATS: Mapping[str, WebhookFormat] = MappingProxyType(
    {f.name: f for f in (ketchup.FORMAT, ip1.FORMAT, hyber.FORMAT, smartswitch.FORMAT)}
)
DEFAULT_FORMAT = ketchup.FORMAT.name
STATUS_EVENT = "message.status"
EXPORT_READY_EVENT = "export.ready"
EXPORT_FAILED_EVENT = "export.failed"


def validate_format(name: str) -> str:
    if name not in FORMATS:
        raise InvalidRequest(
            f"webhook format {name!r} is not one of {', '.join(FORMATS)}",
            reason="bad_webhook_format",
            field="webhook_format",
        )
    return name


# --- Enqueue (the status-change hot path) -------------------------------------------------


async def enqueue_reports(
    session: AsyncSession, clock: Clock, applied: Sequence[AppliedChange]
) -> int:
    """Store one delivery per applied change whose message has somewhere to report to.

    One query for the clients involved and one bulk insert, whatever the batch size; when
    no message and no client involved has a URL, nothing is rendered or written.
    """
    if not applied:
        return 0
    targets = await WebhookRepository(session).targets({a.message.client_id for a in applied})
    if not any(t.callback_url for t in targets.values()) and not any(
        a.message.callback_url for a in applied
    ):
        return 0
    now = clock.now()
    last_change = {id(a.message): a for a in applied}
    parents = {a.message.parent_id for a in applied if a.message.parent_id is not None}
    parent_references = (
        await MessageRepository(session).references(sorted(parents)) if parents else {}
    )
    settings: dict[int, tuple[WebhookFormat, list[int]]] = {}
    rows: list[dict[str, Any]] = []
    for change in applied:
        message = change.message
        target = targets.get(message.client_id)
        url = message.callback_url or (target.callback_url if target else None)
        if not url or target is None:
            continue
        if target.client_id not in settings:
            settings[target.client_id] = _settings_of(target)
        fmt, schedule = settings[target.client_id]
        at = change.change.at
        state = message if last_change[id(message)] is change else _state_at(change)
        rows.append(
            {
                "webhook_id": new_webhook_id(),
                "client_id": message.client_id,
                "message_id": message.id,
                "event": STATUS_EVENT,
                "url": url,
                "format": fmt.name,
                "content_type": fmt.content_type,
                "body": fmt.render(
                    Report(
                        state,
                        change.change.status,
                        at,
                        parent_references.get(message.parent_id or 0),
                    )
                ),
                "state": PENDING,
                "attempts": 0,
                "schedule": schedule,
                # A supplier whose clock runs ahead must not hold the report back.
                "next_attempt_at": min(at, now),
                "locked_until": None,
                "created_at": now,
                "finished_at": None,
                "last_error": None,
            }
        )
    await WebhookRepository(session).add_deliveries(rows)
    return len(rows)


async def enqueue_client_event(
    session: AsyncSession,
    clock: Clock,
    client_id: int,
    event: str,
    body: str,
    *,
    url: str | None = None,
    schedule: Sequence[int] = KETCHUP,
) -> bool:
    """Store one JSON POST of an event that belongs to no message (a finished export).

    It goes to `url`, else to the client's callback URL, retried on seed 004's schedule
    (1 min, 6 min, 1 h, 12 h, 24 h) whatever the client's; False when there is no URL.
    Call it in the transaction that records the event, like `enqueue_reports`.
    """
    repo = WebhookRepository(session)
    if url is None:
        target = (await repo.targets({client_id})).get(client_id)
        url = target.callback_url if target else None
    if not url:
        return False
    await repo.add_deliveries(
        [_client_event_row(client_id, event, url, body, schedule, clock.now())]
    )
    return True


def _client_event_row(
    client_id: int, event: str, url: str, body: str, schedule: Sequence[int], now: datetime
) -> dict[str, Any]:
    """A new delivery of a client event: a JSON POST due now, retried on `schedule`."""
    return {
        "webhook_id": new_webhook_id(),
        "client_id": client_id,
        "message_id": None,
        "event": event,
        "url": url,
        "format": ketchup.FORMAT.name,
        "content_type": JSON,
        "body": body,
        "state": PENDING,
        "attempts": 0,
        "schedule": list(schedule),
        "next_attempt_at": now,
        "locked_until": None,
        "created_at": now,
        "finished_at": None,
        "last_error": None,
    }


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """One event for `enqueue_client_events`: to `url`, else to the client's callback URL."""

    client_id: int
    event: str
    body: str
    url: str | None = None


async def enqueue_client_events(
    session: AsyncSession,
    clock: Clock,
    events: Sequence[ClientEvent],
    *,
    schedule: Sequence[int] = KETCHUP,
) -> int:
    """`enqueue_client_event` for many events at once: one query, one insert (HLR results).

    Each is a JSON POST retried on `schedule`; events with no URL are skipped. The count
    stored.
    """
    if not events:
        return 0
    repo = WebhookRepository(session)
    need_target = {e.client_id for e in events if not e.url}
    targets = await repo.targets(need_target) if need_target else {}
    now = clock.now()
    rows = []
    for item in events:
        target = targets.get(item.client_id)
        url = item.url or (target.callback_url if target else None)
        if not url:
            continue
        rows.append(_client_event_row(item.client_id, item.event, url, item.body, schedule, now))
    await repo.add_deliveries(rows)
    return len(rows)


def _settings_of(target: WebhookTarget) -> tuple[WebhookFormat, list[int]]:
    """The client's format and schedule; stored values are validated when set, but a report
    must never fail the status change it belongs to, so anything unusable falls back."""
    fmt = FORMATS.get(target.format)
    if fmt is None:
        log.warning("client %s has unknown webhook format %r", target.client_id, target.format)
        fmt = FORMATS[DEFAULT_FORMAT]
    try:
        schedule = parse_schedule(target.retry_schedule)
    except InvalidRequest:
        log.warning("client %s has an invalid retry schedule", target.client_id)
        schedule = list(PRESETS[DEFAULT_SCHEDULE])
    return fmt, schedule


def _state_at(applied: AppliedChange) -> MessageRecord:
    """The message as it was right after an earlier change of this same batch.

    Only needed when one batch moves a message twice (sent, then delivered): the record
    already holds the later state.
    """
    message, change = applied.message, applied.change
    return replace(
        message,
        status=change.status.value,
        status_detail=change.detail,
        time_dr=change.at if change.status.is_final else None,
        time_sent=None
        if message.time_sent is not None and message.time_sent > change.at
        else message.time_sent,
    )


# --- Outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """What one HTTP attempt came to; status_code None when no answer came at all."""

    at: datetime
    duration_ms: int
    status_code: int | None = None
    body: bytes = b""
    error: str | None = None


def outcome_of(
    delivery: ClaimedDelivery, response: Response | None, now: datetime, unsent: str = ""
) -> Outcome:
    """The log entry and new state for a delivery.

    `response` None means no answer is known (never sent, or the worker stopped waiting):
    the delivery is released to be claimed again at once, no attempt counted.
    """
    if response is None:
        return Outcome(
            delivery_id=delivery.id,
            lease=delivery.lease,
            attempt=None,
            state=PENDING,
            attempts=delivery.attempts,
            next_attempt_at=now,
            finished_at=None,
            last_error=unsent or "released unsent",
        )
    fmt = FORMATS.get(delivery.format, FORMATS[DEFAULT_FORMAT])
    text = response.body.decode("utf-8", errors="replace")[:500] if response.body else None
    ok = response.status_code is not None and fmt.succeeded(response.status_code, response.body)
    error = response.error
    if not ok and error is None:
        error = f"HTTP {response.status_code}" + ("" if text is None else f": {text}")
    attempt = {
        "delivery_id": delivery.id,
        "at": response.at,
        "status_code": response.status_code,
        "response_body": text,
        "error": None if error is None else error[:200],
        "duration_ms": response.duration_ms,
    }
    attempts = delivery.attempts + 1
    if ok:
        state, next_at, finished, error = DELIVERED, now, now, None
    elif attempts <= len(delivery.schedule):
        state, next_at, finished = (
            PENDING,
            now + timedelta(seconds=delivery.schedule[attempts - 1]),
            None,
        )
    else:
        state, next_at, finished = FAILED, now, now
    return Outcome(
        delivery_id=delivery.id,
        lease=delivery.lease,
        attempt=attempt,
        state=state,
        attempts=attempts,
        next_attempt_at=next_at,
        finished_at=finished,
        last_error=error,
    )


# --- Operator actions -----------------------------------------------------------------------


async def ensure_secret(session: AsyncSession, client_id: int, *, rotate: bool = False) -> str:
    """The client's signing secret, created (or replaced, with `rotate`) when asked."""
    repo = WebhookRepository(session)
    secret = await repo.get_secret(client_id)
    if secret is None or rotate:
        secret = new_secret()
        await repo.set_secret(client_id, secret)
    return secret


async def recent_deliveries(
    session: AsyncSession, client_id: int, limit: int = 20
) -> list[dict[str, Any]]:
    """The delivery log of a client, newest first, as plain data for the CLI."""
    return [
        {
            "id": d.id,
            "webhook_id": d.webhook_id or str(d.id),
            "message_id": d.message_id,
            "event": d.event,
            "url": d.url,
            "format": d.format,
            "state": d.state,
            "attempt_count": d.attempts,
            "next_attempt_at": d.next_attempt_at if d.state == PENDING else None,
            "created_at": d.created_at,
            "finished_at": d.finished_at,
            "last_error": d.last_error,
            "body": d.body,
            "attempts": [
                {
                    "at": a.at,
                    "status_code": a.status_code,
                    "duration_ms": a.duration_ms,
                    "error": a.error,
                    "response_body": a.response_body,
                }
                for a in attempts
            ],
        }
        for d, attempts in await WebhookRepository(session).recent(client_id, limit)
    ]
