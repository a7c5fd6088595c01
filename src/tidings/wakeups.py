"""Wake-ups: a worker sleeps until there is work for it instead of polling the database.

A transaction that creates work names the work's channel (`wake_after_commit(session,
WEBHOOKS)`). When it commits, the process's `Wakeups` hub sets that channel's events for the
loops of this process, and its transport tells the other processes that share the database:

- PostgreSQL: `NOTIFY` on one listening connection per process (any host);
- SQLite: a datagram to each sibling process's Unix socket, in a folder named after the
  database file (the processes of one SQLite database share one host by definition).

A waiting loop still looks every `idle_poll` seconds: work that comes due by the clock
(retries, scheduled messages) is found that way, and a lost notification (a listener that was
reconnecting, a process that started a moment late) only delays work, never loses it: the
work itself is always a row.

Without a hub (the tests' plain session makers) loops poll at their own interval, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

log = logging.getLogger("tidings.wakeups")

# The channels: one per kind of work a loop waits for.
DISPATCH = "dispatch"  # dispatch jobs: the supplier lanes (one channel each, below)
WEBHOOKS = "webhooks"  # webhook deliveries
HLR = "hlr"  # HLR lookups
EXPORTS = "exports"  # statistics exports
SMPP_RECEIPTS = "smpp-receipts"  # receipts for clients bound to the SMPP server

_PG_CHANNEL = "tidings_wake"


def dispatch_channel(supplier_id: int) -> str:
    """The channel of one supplier's lane: a job for one supplier wakes only its lane."""
    return f"{DISPATCH}.{supplier_id}"


# Wakes every loop of a process: sent by a listener that was away for a while.
EVERYTHING_NAME = "*"
EVERYTHING = (EVERYTHING_NAME,)
_INFO_HUB = "tidings.wakeups"
_INFO_PENDING = "tidings.wake-pending"
_INFO_LATER = "tidings.wake-later"


class Transport(Protocol):
    """Carries channel names to the other processes of the same database."""

    async def start(self, receive: Callable[[Iterable[str]], None]) -> None: ...

    def publish(self, channels: Iterable[str]) -> None: ...

    async def stop(self) -> None: ...


class Wakeups:
    """One per process: channel name -> the events of the loops waiting on it."""

    def __init__(self, transport: Transport | None = None, *, idle_poll: float = 5.0) -> None:
        self.idle_poll = idle_poll
        self._transport = transport
        self._subscribers: dict[str, list[asyncio.Event]] = {}
        self._outgoing: set[str] = set()
        self._flush_at_turn_end = False

    @classmethod
    def for_database(cls, url: str, *, idle_poll: float = 5.0) -> Wakeups:
        return cls(transport_for(url), idle_poll=idle_poll)

    async def start(self) -> None:
        if self._transport is not None:
            await self._transport.start(self._wake_local)

    async def stop(self) -> None:
        if self._transport is not None:
            await self._transport.stop()

    def subscribe(self, channel: str) -> asyncio.Event:
        """An event of the caller's own, set whenever `channel` has new work."""
        waiting = asyncio.Event()
        self._subscribers.setdefault(channel, []).append(waiting)
        return waiting

    def notify(self, channels: Iterable[str]) -> None:
        """Wake this process's loops now and the other processes at the end of this turn."""
        channels = set(channels)
        self._wake_local(channels)
        if self._transport is None or not channels:
            return
        self._outgoing |= channels
        if not self._flush_at_turn_end:
            # Many commits in one loop turn (a report round, a burst of accepts) make one
            # message to the other processes, not one each.
            self._flush_at_turn_end = True
            asyncio.get_running_loop().call_soon(self._flush)

    def notify_later(self, channel: str, seconds: float) -> None:
        """Wake this process's loops on `channel` in `seconds` (work that comes due then)."""
        if seconds < self.idle_poll:  # otherwise the idle look comes first anyway
            loop = asyncio.get_running_loop()
            loop.call_later(max(0.0, seconds), self._wake_local, (channel,))

    def _flush(self) -> None:
        self._flush_at_turn_end = False
        outgoing, self._outgoing = self._outgoing, set()
        if self._transport is not None and outgoing:
            self._transport.publish(outgoing)

    def _wake_local(self, channels: Iterable[str]) -> None:
        for channel in channels:
            if channel == EVERYTHING_NAME:
                for every in self._subscribers.values():
                    for waiting in every:
                        waiting.set()
                continue
            for waiting in self._subscribers.get(channel, ()):
                waiting.set()


async def sleep_until_woken(waiting: asyncio.Event, seconds: float) -> None:
    """Wait for `waiting` (a subscription) or `seconds`, whichever comes first.

    The caller clears the event *before* it looks for work, so a wake-up that arrives while
    it looks is not lost.
    """
    if waiting.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiting.wait(), seconds)


# --- Sessions that wake on commit ---------------------------------------------------------


class WakingSession(Session):
    """A session that hands the channels its transaction named to the hub after commit."""


@event.listens_for(WakingSession, "after_commit")
def _after_commit(session: Session) -> None:
    pending: set[str] | None = session.info.pop(_INFO_PENDING, None)
    later: dict[str, float] | None = session.info.pop(_INFO_LATER, None)
    hub: Wakeups | None = session.info.get(_INFO_HUB)
    if hub is None:
        return
    if pending:
        hub.notify(pending)
    for channel, delay in (later or {}).items():
        hub.notify_later(channel, delay)


@event.listens_for(WakingSession, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_INFO_PENDING, None)
    session.info.pop(_INFO_LATER, None)


def waking_sessionmaker_options(wakeups: Wakeups) -> dict[str, Any]:
    """The `async_sessionmaker` keywords that tie its sessions to `wakeups`."""
    return {"sync_session_class": WakingSession, "info": {_INFO_HUB: wakeups}}


def wake_after_commit(session: AsyncSession | Session, *channels: str) -> None:
    """Name the work this transaction creates; its loops wake when (and if) it commits."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if _INFO_HUB in sync.info:
        sync.info.setdefault(_INFO_PENDING, set()).update(channels)


def wake_after_commit_in(session: AsyncSession | Session, channel: str, seconds: float) -> None:
    """Work this transaction makes due in `seconds` (a retry): this process's loops on
    `channel` wake then, rather than at their next idle look."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if _INFO_HUB in sync.info:
        later: dict[str, float] = sync.info.setdefault(_INFO_LATER, {})
        later[channel] = min(seconds, later.get(channel, seconds))


def wakeups_of(sessions: async_sessionmaker[AsyncSession]) -> Wakeups | None:
    """The hub a session maker's commits notify, if it has one."""
    info = sessions.kw.get("info") or {}
    hub = info.get(_INFO_HUB)
    return hub if isinstance(hub, Wakeups) else None


# --- Transports ---------------------------------------------------------------------------


def transport_for(url: str) -> Transport | None:
    if url.startswith("postgres"):
        return PostgresNotify(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and ":memory:" not in path and not path.startswith("file::memory"):
            return SiblingSockets(Path(path.split("?", 1)[0]).resolve())
    return None


class PostgresNotify:
    """LISTEN/NOTIFY on one connection of its own, reconnecting with back-off."""

    def __init__(self, url: str, *, max_backoff: float = 30.0) -> None:
        _, _, rest = url.partition("://")
        self.dsn = "postgresql://" + rest
        self.max_backoff = max_backoff
        self._connection: Any = None
        self._task: asyncio.Task[None] | None = None
        self._receive: Callable[[Iterable[str]], None] = lambda _: None
        self._stopping = asyncio.Event()
        self._lost = asyncio.Event()

    async def start(self, receive: Callable[[Iterable[str]], None]) -> None:
        self._receive = receive
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._keep_listening())

    async def _keep_listening(self) -> None:
        import asyncpg  # the PostgreSQL driver; only imported where PostgreSQL is used

        backoff = 0.5
        while not self._stopping.is_set():
            try:
                connection = await asyncpg.connect(self.dsn)
                self._lost = asyncio.Event()
                connection.add_termination_listener(lambda _c: self._lost.set())
                await connection.add_listener(_PG_CHANNEL, self._on_notification)
                self._connection = connection
                backoff = 0.5
                # Work may have been created while we were not listening.
                self._receive(EVERYTHING)
                stop = asyncio.ensure_future(self._stopping.wait())
                lost = asyncio.ensure_future(self._lost.wait())
                await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                lost.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: loops fall back on polling
                log.warning("wake-up listener: %s; retrying in %.1f s", error, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                connection, self._connection = self._connection, None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._receive(payload.split(","))

    def publish(self, channels: Iterable[str]) -> None:
        connection = self._connection
        if connection is None:
            return  # not listening right now: the others' polls find the work
        payload = ",".join(sorted(channels))
        task = asyncio.get_running_loop().create_task(
            connection.execute("SELECT pg_notify($1, $2)", _PG_CHANNEL, payload)
        )
        task.add_done_callback(_ignore_failure)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5)
            self._task = None


def _ignore_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("wake-up notify failed: %s", task.exception())


class SiblingSockets:
    """One Unix datagram socket per process, in a folder named after the database file."""

    def __init__(self, database: Path) -> None:
        digest = hashlib.sha256(str(database).encode()).hexdigest()[:16]
        # Short on purpose: a Unix socket path may hold at most ~100 bytes.
        self.folder = Path(tempfile.gettempdir()) / f"tidings-wake-{digest}"
        self._socket: socket.socket | None = None
        self._path: Path | None = None
        self._receive: Callable[[Iterable[str]], None] = lambda _: None

    async def start(self, receive: Callable[[Iterable[str]], None]) -> None:
        self._receive = receive
        self.folder.mkdir(mode=0o700, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        # Unique even for two hubs of one process (tests); files of processes that died are
        # removed by the first sender that finds nobody listening.
        self._path = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        sock.bind(str(self._path))
        self._socket = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        assert self._socket is not None
        while True:
            try:
                data = self._socket.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._receive(data.decode("ascii", "replace").split(","))

    def publish(self, channels: Iterable[str]) -> None:
        if self._socket is None:
            return
        payload = ",".join(sorted(channels)).encode("ascii")
        try:
            siblings = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in siblings:
            if self._path is not None and entry.path == str(self._path):
                continue
            try:
                self._socket.sendto(payload, entry.path)
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody listens there any more: a process that died without cleaning up.
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            except OSError:
                continue  # its queue is full: it has a wake-up pending anyway

    async def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
            self._path = None
