"""When the database goes away: telling a lost connection from a real fault, and backing off.

A PostgreSQL restart (or a failover) shows up as many different exceptions, depending on
the moment it strikes: the server refuses connections (OSError), a pooled connection is
closed under a statement (asyncpg's ConnectionDoesNotExistError, InterfaceError
"connection is closed"), the server says it is shutting down or starting up (SQLSTATE
57P01–57P03), or SQLAlchemy marks the connection invalidated. The APIs answer those with 503
and Retry-After (docs/api.md), and every background loop waits with a growing delay and
tries again, never dropping what it holds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

T = TypeVar("T")
log = logging.getLogger("tidings.outage")

# How long clients are told to wait while the database is away (seconds).
RETRY_AFTER_SECONDS = 5

# SQLSTATE classes: 08 connection exception, 57P0x the server shutting down or starting.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_CLOSED_PHRASES = (
    "connection is closed",
    "connection was closed",
    "the database system is",
    "terminating connection",
    "server closed the connection",
    "unable to open database file",
)


def is_connection_error(error: BaseException) -> bool:
    """True when `error` (or what caused it) means the database cannot be reached now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, ConnectionError | PoolTimeout):
            return True
        if isinstance(current, OSError) and _is_network_error(current):
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_OUTAGE_SQLSTATES):
            return True
        text = str(current).lower()
        if any(phrase in text for phrase in _CLOSED_PHRASES):
            return True
        cause = getattr(current, "orig", None) if isinstance(current, DBAPIError) else None
        current = cause or current.__cause__ or current.__context__
    return False


# A socket error of the connection to the database; a disk that is full is no outage.
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}


def _is_network_error(error: OSError) -> bool:
    if isinstance(error, socket.gaierror) or error.errno in _NETWORK_ERRNOS:
        return True
    # asyncpg trying several addresses: "Multiple exceptions: [Errno 111] Connect call failed"
    text = str(error)
    return "Connect call failed" in text or "[Errno 111]" in text


class Backoff:
    """Growing delays for a loop that lost its database: 0.1 s doubling up to `maximum`,
    with jitter so that many loops do not hammer a server that is coming back in step."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.failures)
        self.failures += 1
        jitter: float = 0.5 + random.random() / 2  # spreads loops coming back at once
        return float(delay) * jitter

    def reset(self) -> None:
        self.failures = 0


def pause_after_failure(
    error: Exception, backoff: Backoff, *, what: str, usual: float, logger: logging.Logger
) -> float:
    """How long a background loop waits after a failed round, logged once: longer each
    time while the database is away (a warning, no traceback), else its usual wait (the
    error with its traceback: that is a bug, not weather)."""
    if is_connection_error(error):
        pause = backoff.next_delay()
        logger.warning(
            "%s: the database is unavailable (%s); retrying in %.1f s",
            what,
            describe(error),
            pause,
        )
        return pause
    logger.exception("%s failed", what)
    return usual


def describe(error: BaseException) -> str:
    """One short line for a log: the first line of the error's text."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:200]


async def retry_while_unavailable(
    action: Callable[[], Awaitable[T]],
    *,
    what: str,
    backoff: Backoff | None = None,
    stopping: asyncio.Event | None = None,
) -> T:
    """Run `action` (one transaction) until it gets through: while the database is away,
    wait with a growing delay and try again, so what the caller holds (a supplier's
    answers, reports) is written once the database is back instead of being dropped.
    Other errors propagate at once; so does the outage once `stopping` is set (the caller's
    leases then hand the work to whoever runs next)."""
    backoff = backoff or Backoff()
    while True:
        try:
            return await action()
        except Exception as error:
            if not is_connection_error(error) or (stopping is not None and stopping.is_set()):
                raise
            delay = backoff.next_delay()
            log.warning(
                "%s: the database is unavailable (%s); retrying in %.1f s",
                what,
                describe(error),
                delay,
            )
            await asyncio.sleep(delay)
