"""Which errors mean "the database is away" (docs/api.md): those are retried and answered
503; anything else is a real fault."""

from __future__ import annotations

import errno

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from tidings.db.outage import Backoff, is_connection_error


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
