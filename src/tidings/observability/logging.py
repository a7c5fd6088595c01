"""Structured logs: one JSON object per line on stderr, from the standard library.

Every record becomes `{"time", "level", "logger", "event", ...fields}`: the message is the
event name, and whatever a call passes in `extra` (message_id, client_id, ...) becomes a
field of its own. Uvicorn's records go through the same handler. The level is
`TIDINGS_LOG_LEVEL` (WARNING by default: quiet; INFO adds one event per status change).
structlog would give the same lines; the standard library needs no processor chain and
costs nothing for records below the level, which is all of them by default.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import orjson

from tidings.messages.changes import AppliedChange

if TYPE_CHECKING:
    from tidings.messages.acceptance import Acceptance, PreparedSms

# The attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(
    set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    | {"message", "asctime", "color_message", "taskName"}
)

STATUS_EVENTS = logging.getLogger("tidings.messages")

LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def parse_level(name: str) -> int:
    """A level by name, in any case; ValueError for anything else."""
    level = LEVELS.get(name.strip().upper())
    if level is None:
        raise ValueError(f"unknown log level {name!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def configure_logging(level: str, stream: IO[str] | None = None) -> logging.Handler:
    """Send every record of the process, as JSON lines, to `stream` (stderr) at `level`.

    Called once by each CLI command that runs a process; the app factory leaves logging
    alone, so embedding Tidings (or a test run) keeps its own set-up.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    # Uvicorn's loggers keep their own level; let the one setting govern them too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    return handler


def log_status_changes(applied: Iterable[AppliedChange]) -> None:
    """One `message.status` event per applied change (INFO; nothing is built below it)."""
    if not STATUS_EVENTS.isEnabledFor(logging.INFO):
        return
    for item in applied:
        message = item.message
        STATUS_EVENTS.info(
            "message.status",
            extra={
                "message_id": message.id,
                "client_id": message.client_id,
                "supplier_id": message.supplier_id,
                "channel": message.channel,
                "country": message.country,
                "from_status": item.previous.value,
                "status": item.change.status.value,
                "detail": item.change.detail,
                "supplier_message_id": message.supplier_message_id,
                "at": item.change.at.isoformat(),
            },
        )


def log_accepted(prepared: PreparedSms, accepted: Acceptance, channel: str) -> None:
    """One `message.accepted` event per stored message (INFO)."""
    if not STATUS_EVENTS.isEnabledFor(logging.INFO):
        return
    client_id = prepared.caller.client_id
    for item, priced in zip(accepted.items, prepared.quote.items, strict=True):
        STATUS_EVENTS.info(
            "message.accepted",
            extra={
                "message_id": item.id,
                "client_id": client_id,
                "supplier_id": priced.supplier_id,
                "channel": channel,
                "country": priced.destination.iso,
                "reference": item.reference,
            },
        )
