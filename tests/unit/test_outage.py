"""Which errors mean "the database is away" (docs/api.md): those are retried and answered
503; anything else is a real fault."""

from __future__ import annotations

import errno
import logging

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from tidings.db.outage import Backoff, is_connection_error, pause_after_failure


class FakeAsyncpgError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> DBAPIError:
    return OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        _wrapped(FakeAsyncpgError("terminating connection due to administrator command", "57P01")),
        _wrapped(FakeAsyncpgError("the database system is starting up", "57P03")),
        _wrapped(FakeAsyncpgError("connection does not exist", "08003")),
        _wrapped(Exception("connection is closed")),
    ],
)
def test_outages_are_recognised(error: BaseException) -> None:
    assert is_connection_error(error)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "disk full"),
        FileNotFoundError("no such file"),
        ValueError("bad"),
        _wrapped(FakeAsyncpgError("duplicate key value", "23505")),
        _wrapped(FakeAsyncpgError("deadlock detected", "40P01")),
    ],
)
def test_real_faults_are_not_outages(error: BaseException) -> None:
    assert not is_connection_error(error)


def test_an_outage_seen_through_a_chain_of_causes() -> None:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("the round failed") from inner
    except RuntimeError as outer:
        assert is_connection_error(outer)


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert delays[-1] >= 1.0  # capped at 2 s, jittered down by at most half
    assert max(delays[:2]) <= 0.2
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_a_loop_waits_longer_while_the_database_is_away_and_as_usual_after_a_bug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tidings.test-outage")
    backoff = Backoff(initial=1.0, maximum=4.0)
    away = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    with caplog.at_level(logging.WARNING, logger="tidings.test-outage"):
        pauses = [
            pause_after_failure(away, backoff, what="lane sim", usual=0.05, logger=log)
            for _ in range(4)
        ]
        bug = pause_after_failure(
            ValueError("bad"), backoff, what="lane sim", usual=0.05, logger=log
        )
    assert pauses[0] < pauses[1] < pauses[2] <= 4.0 and pauses[3] <= 4.0
    assert bug == 0.05
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4 and all(r.exc_info is None for r in warnings)
    assert "lane sim: the database is unavailable" in warnings[0].getMessage()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["lane sim failed"] and errors[0].exc_info
