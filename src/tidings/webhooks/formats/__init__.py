"""Webhook payload formats, one module per seed, each exporting `FORMAT`.

A format renders a status change into the text stored with the delivery (rendered once,
when the change happens, so a later change can't alter an earlier report), and turns a
stored delivery into the HTTP request to make. The registry lives in
`tidings.webhooks.service.FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from tidings.messages.changes import MessageRecord
from tidings.messages.status import Status

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Report:
    """One status change to tell a client about.

    `message` is the message as it was right after this change (not necessarily as it is
    now: one transaction can move a message twice, sent then delivered).
    """

    message: MessageRecord
    status: Status
    at: datetime
    # A Viber message's SMS fallback leg is reported as part of that message: its
    # reference (the client's extra_id) is the Viber message's.
    parent_reference: str | None = None


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """What the worker knows about a claimed delivery when it builds the request."""

    id: int
    url: str
    content_type: str
    body: str
    login: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The request to make: always a POST. `body` is what is sent and signed."""

    url: str
    body: bytes
    content_type: str | None


def post_body(delivery: StoredDelivery) -> Outgoing:
    """The usual request: the stored body, POSTed to the URL as is."""
    return Outgoing(delivery.url, delivery.body.encode(), delivery.content_type)


def is_2xx(status_code: int, _body: bytes) -> bool:
    return 200 <= status_code < 300


@dataclass(frozen=True, slots=True)
class WebhookFormat:
    name: str
    content_type: str
    render: Callable[[Report], str]
    request: Callable[[StoredDelivery], Outgoing] = field(default=post_body)
    succeeded: Callable[[int, bytes], bool] = field(default=is_2xx)


def dump_json(content: object) -> str:
    return orjson.dumps(content).decode()
