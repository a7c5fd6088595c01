"""Structured logs: JSON lines with their fields, and TIDINGS_LOG_LEVEL deciding what shows."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from tests.support import message_record
from tidings.config import Settings
from tidings.messages.changes import AppliedChange, StatusChange
from tidings.messages.status import Status
from tidings.observability.logging import configure_logging, log_status_changes, parse_level

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAMES = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A stream to configure logging onto; the process's logging is put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NAMES}
    yield io.StringIO()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def change(status: Status) -> AppliedChange:
    message = message_record(
        id=41,
        client_id=7,
        supplier_id=3,
        channel="sms",
        country="UA",
        supplier_message_id="up-41",
        status=status.value,
    )
    return AppliedChange(
        message=message,
        previous=Status.QUEUED,
        change=StatusChange(41, status, T0, detail="ok", supplier_message_id="up-41"),
    )


def test_every_record_is_one_json_object_with_its_fields(stream: io.StringIO) -> None:
    configure_logging("INFO", stream)
    log = logging.getLogger("tidings.test")
    log.info("lane.started", extra={"supplier_id": 3, "at": T0, "price": Decimal("0.02")})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("lane.failed", extra={"supplier_id": 3})
    first, second = lines(stream)
    assert first["event"] == "lane.started"
    assert first["level"] == "info"
    assert first["logger"] == "tidings.test"
    assert first["supplier_id"] == 3
    assert first["at"] == T0.isoformat()
    assert first["price"] == "0.02"  # not JSON-native: its str()
    assert datetime.fromisoformat(str(first["time"])).tzinfo is not None
    assert second["level"] == "error"
    assert "RuntimeError: boom" in str(second["exception"])


def test_a_status_change_is_an_event_with_message_client_and_supplier(
    stream: io.StringIO,
) -> None:
    configure_logging("info", stream)
    log_status_changes([change(Status.SENT)])
    [event] = lines(stream)
    assert event["event"] == "message.status"
    assert event["logger"] == "tidings.messages"
    assert {k: event[k] for k in ("message_id", "client_id", "supplier_id")} == {
        "message_id": 41,
        "client_id": 7,
        "supplier_id": 3,
    }
    assert event["from_status"] == "queued"
    assert event["status"] == "sent"
    assert event["supplier_message_id"] == "up-41"
    assert event["channel"] == "sms"
    assert event["country"] == "UA"
    assert event["at"] == T0.isoformat()


def test_quiet_by_default_warnings_only(stream: io.StringIO) -> None:
    settings = Settings()
    assert settings.log_level == "WARNING"
    configure_logging(settings.log_level, stream)
    log_status_changes([change(Status.DELIVERED)])
    logging.getLogger("tidings.delivery").info("not shown")
    logging.getLogger("tidings.delivery").warning("supplier.down", extra={"supplier_id": 3})
    assert [line["event"] for line in lines(stream)] == ["supplier.down"]


def test_tidings_log_level_changes_it(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.log_level == "DEBUG"
    configure_logging(settings.log_level, stream)
    logging.getLogger("tidings.delivery").debug("claim.empty")
    logging.getLogger("uvicorn.error").info("Started server process")  # uvicorn's own too
    assert [line["event"] for line in lines(stream)] == ["claim.empty", "Started server process"]

    monkeypatch.setenv("TIDINGS_LOG_LEVEL", "ERROR")
    configure_logging(Settings().log_level, stream)
    logging.getLogger("tidings.delivery").warning("not shown")
    assert len(lines(stream)) == 2


def test_an_unknown_level_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="unknown log level"):
        Settings()
    with pytest.raises(ValueError):
        parse_level("20")
    assert parse_level(" Warning ") == logging.WARNING
