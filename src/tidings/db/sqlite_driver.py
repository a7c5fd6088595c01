"""SQLAlchemy's aiosqlite adapter, with one trip to the SQLite thread per statement.

aiosqlite runs every sqlite3 call on its own thread; each call is a hand-over there and back
(a queue put, a thread wake-up, ``call_soon_threadsafe``). SQLAlchemy's adapter makes four of
them for a SELECT (cursor, execute, fetchall, close) and three for other statements. The
statements of this gateway take microseconds in SQLite, the hand-overs tens of microseconds
of CPU each (measured: 185 us for ``execute`` + ``fetchall`` of ``SELECT 1`` against 1 us
without the thread), so a group-commit round of ten small statements spent most of its time
crossing threads. This adapter does the whole statement — cursor, execute, fetch, close — in
one function on that thread, and the transaction's ``BEGIN`` goes with its first statement.

On the hot paths (`inline_statements()`: the group-commit writers, the lanes, the webhook loops)
even that one trip goes: the statement runs right here, on the event loop's thread. These
statements take tens of microseconds in SQLite, while a trip waits for the event loop to come
round again — a millisecond or more when the loop is busy with HTTP and SMPP — and the one
writer connection is held all that while: measured under the end-to-end benchmark, the
connection was busy 98 % of the time, mostly waiting for loop turns. Inline, only a BEGIN that
finds the database locked by another process still goes to the thread, so the loop never waits
on another process. The COMMIT is inline too: in WAL mode with synchronous=NORMAL it writes
the WAL without an fsync; the one in about a thousand pages that checkpoints the WAL into the
database (and fsyncs it) holds the loop for that checkpoint, measured 6–10 ms for 4 MB here.

It plugs in as the dialect's DBAPI module (``create_async_engine(..., module=...)``), so the
dialect, pool, events and server-side cursors (streamed results, untouched) are SQLAlchemy's.
It relies on ``aiosqlite.Connection._execute`` (the hook aiosqlite's own methods use); where
that is missing, it falls back to SQLAlchemy's adapter unchanged.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

_Outcome = tuple[Any, list[Any] | None, Any, int]  # description, rows, lastrowid, rowcount

_INLINE: ContextVar[bool] = ContextVar("tidings_sqlite_inline", default=False)
# An executemany this long goes to the thread even inline: a bulk insert of thousands of rows
# takes long enough to be felt by every other task on the loop.
_INLINE_MAX_ROWS = 500
_BUSY_TIMEOUT_MS = 10_000


@contextmanager
def inline_statements() -> Iterator[None]:
    """Within this block (this task and the tasks it starts), SQLite statements run on the
    event loop's thread rather than SQLite's (see the module's docstring). For short, hot
    transactions only: a long query here would stall the loop. No effect on PostgreSQL."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


def _run(
    connection: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """One statement, start to end, on aiosqlite's thread (after the BEGIN held back for it)."""
    cursor = connection.cursor()
    try:
        if begin is not None:
            cursor.execute(begin)
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


def _run_inline(
    connection: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> _Outcome | None:
    """`_run` on the caller's thread; None if the transaction's BEGIN found the database
    locked (another process writing): then it is for the thread to wait, not the loop."""
    if begin is None:
        return _run(connection, None, operation, parameters, many)
    connection.execute("PRAGMA busy_timeout=0")
    try:
        connection.execute(begin)
    except sqlite3.OperationalError as error:
        if connection.in_transaction or "locked" not in str(error):
            raise
        return None
    finally:
        connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return _run(connection, None, operation, parameters, many)


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._one_trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._one_trip(operation, seq_of_parameters, many=True)

    def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        adapted.idle = False  # this statement may begin a transaction
        if not many and not parameters and operation.startswith("BEGIN"):
            # Held back and sent with the transaction's first statement: one trip fewer.
            # (SQLAlchemy passes `()` for a statement without parameters.)
            # Nothing can happen in between, so the lock is taken at the same point.
            adapted.begin = operation
            self.description, self.rowcount, self.lastrowid = None, -1, -1
            return
        begin, adapted.begin = adapted.begin, None
        try:
            outcome: _Outcome | None = None
            if _INLINE.get() and (not many or len(parameters) <= _INLINE_MAX_ROWS):
                outcome = _run_inline(connection._conn, begin, operation, parameters, many)
            if outcome is None:
                outcome = self.await_(
                    connection._execute(  # type: ignore[no-untyped-call]
                        _run, connection._conn, begin, operation, parameters, many
                    )
                )
            description, rows, lastrowid, rowcount = outcome
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        if description:
            self.description = description
            self.lastrowid = self.rowcount = -1
            self._rows = deque(rows or ())
        else:
            self.description = None
            self.lastrowid = lastrowid
            self.rowcount = rowcount


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Also skips the trip of a rollback when nothing ran since the last commit or rollback:
    the pool rolls back every connection it gets back, even one whose transaction just
    committed (SQLite is in autocommit then: there is nothing to roll back)."""

    __slots__ = ("begin", "idle")

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.idle = False
        self.begin: str | None = None  # a BEGIN not sent yet (see OneTripCursor)

    def execute(self, *args: Any, **kw: Any) -> Any:
        self._send_begin()
        self.idle = False
        return super().execute(*args, **kw)

    def commit(self) -> None:
        if self.begin is not None:  # nothing ran in this transaction: nothing to commit
            self.begin = None
        elif _INLINE.get():
            self._inline(self._connection._conn.commit)
        else:
            super().commit()
        self.idle = True

    def rollback(self) -> None:
        self.begin = None
        if self.idle:
            return
        if _INLINE.get():
            self._inline(self._connection._conn.rollback)
        else:
            super().rollback()
        self.idle = True

    def _inline(self, operation: Callable[[], None]) -> None:
        try:
            operation()
        except Exception as error:
            self._handle_exception(error)

    def _send_begin(self) -> None:
        if self.begin is not None:
            begin, self.begin = self.begin, None
            super().execute(begin)

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:  # SQLAlchemy's own cursor: the BEGIN goes first, on its own
            self._send_begin()
            self.idle = False
            return super().cursor(server_side=True)
        return OneTripCursor(self)


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module to give ``create_async_engine`` for ``sqlite+aiosqlite`` URLs."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        # Inline statements use the connection from the loop's thread too; never at the same
        # time as SQLite's thread (each statement is awaited before the next is sent).
        kw.setdefault("check_same_thread", False)
        adapted = super().connect(*arg, **kw)
        if type(adapted) is AsyncAdapt_aiosqlite_connection and hasattr(
            adapted._connection, "_execute"
        ):
            return OneTripConnection(self, adapted._connection)
        return adapted  # the async_fallback flavour, or an aiosqlite without the hook


def one_trip_dbapi() -> OneTripDbapi:
    return OneTripDbapi(aiosqlite, sqlite3)
