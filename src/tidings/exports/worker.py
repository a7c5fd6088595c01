"""The export worker: claims exports, builds their files, tells the client; purges old ones.

A build holds a lease on its export and renews it every third of the lease while it runs.
A worker killed mid-build stops renewing: the lease runs out and another worker (or the
restarted one) builds the export again from scratch; the dead builder's unfinished files are
discarded first. After `max_attempts` claims the export is marked failed, so it never stays
"not ready" for ever. Stepped by hand (`run_once`, `purge`) in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tidings.api.client.render import format_time
from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import transaction
from tidings.db.outage import (
    Backoff,
    describe,
    is_connection_error,
    pause_after_failure,
    retry_while_unavailable,
)
from tidings.exports.filters import ExportFilter
from tidings.exports.repository import ClaimedExport, ExportRepository
from tidings.exports.service import BuildResult, LeaseLost, build_files
from tidings.exports.storage import ExportStorage
from tidings.numbering import CountryTable
from tidings.wakeups import EXPORTS, sleep_until_woken, wakeups_of
from tidings.webhooks.service import (
    EXPORT_FAILED_EVENT,
    EXPORT_READY_EVENT,
    enqueue_client_event,
)

log = logging.getLogger("tidings.exports")

PURGE_BATCH = 100


@dataclass(frozen=True, slots=True)
class ExportOptions:
    batch_size: int = 2000
    poll_interval: float = 1.0
    lease_seconds: float = 60.0
    max_attempts: int = 3
    purge_interval: float = 300.0
    callback_inline_bytes: int = 262_144
    retry_delay: float = 30.0  # after a failed attempt (not a crash: that waits for the lease)

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportOptions:
        return cls(
            batch_size=settings.export_batch_size,
            poll_interval=settings.export_poll_interval,
            lease_seconds=settings.export_lease_seconds,
            max_attempts=settings.export_max_attempts,
            purge_interval=settings.export_purge_interval,
            callback_inline_bytes=settings.export_callback_inline_bytes,
        )

    @property
    def stale_part_seconds(self) -> float:
        """How long an unfinished file may go unwritten before the purge takes it for dead."""
        return max(3600.0, 4 * self.lease_seconds)


def file_paths(key: str, formats: tuple[str, ...]) -> dict[str, str]:
    return {fmt: f"/rest/stat/file/id/{key}/format/{fmt}" for fmt in formats}


class ExportWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reader: AsyncEngine,
        storage: ExportStorage,
        clock: Clock,
        countries: CountryTable,
        options: ExportOptions,
    ) -> None:
        self.sessions = sessions
        self.reader = reader
        self.storage = storage
        self.clock = clock
        self.countries = countries
        self.options = options
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        # Woken by the commits that add exports, in any process (tidings/wakeups.py).
        hub = wakeups_of(sessions)
        self._wake = hub.subscribe(EXPORTS) if hub is not None else asyncio.Event()
        self._idle_wait = hub.idle_poll if hub is not None else self.options.poll_interval
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- Life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._build_loop(), name="export-builds"),
            loop.create_task(self._purge_loop(), name="export-purge"),
        ]

    async def stop(self) -> None:
        """Stop at once: a build in progress is abandoned and its export handed back."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake(self) -> None:
        """A new export was stored: look for work now rather than at the next poll."""
        self._wake.set()

    async def _build_loop(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            self._wake.clear()  # before looking: a wake-up during the step is kept
            pause = self._idle_wait  # longer while the database is away (below)
            try:
                worked = await self.run_once()
                backoff.reset()
            except Exception as error:
                pause = pause_after_failure(
                    error, backoff, what="export build step", usual=pause, logger=log
                )
                worked = False
            if not worked:
                await sleep_until_woken(self._wake, pause)

    async def _purge_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.purge()
            except Exception as error:
                if is_connection_error(error):  # the next round runs after the interval
                    log.warning("export purge: database unavailable (%s)", describe(error))
                else:
                    log.exception("export purge failed")
            await asyncio.sleep(self.options.purge_interval)

    # --- One build ----------------------------------------------------------------------

    async def run_once(self) -> bool:
        """Claim one export and build it; whether there was one to claim."""
        owner = f"{self.worker_id}:{secrets.token_hex(4)}"[-64:]
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.options.lease_seconds)
        async with transaction(self.sessions) as session:
            claimed = await ExportRepository(session).claim(now, lease_until, owner)
        if claimed is None:
            return False
        if claimed.attempts > self.options.max_attempts:
            await self._give_up(claimed, f"no build finished in {self.options.max_attempts} tries")
            return True
        lost = asyncio.Event()
        heartbeat = asyncio.get_running_loop().create_task(self._renew(claimed, lost))
        try:
            result = await build_files(
                self.reader,
                self.storage,
                self.countries,
                client_id=claimed.client_id,
                key=claimed.key,
                spec=ExportFilter.from_json(claimed.filters),
                batch_size=self.options.batch_size,
                still_held=lambda: not lost.is_set(),
            )
        except LeaseLost:
            log.info("export %s: lease lost mid-build, dropped", claimed.key)
            return True
        except asyncio.CancelledError:
            # Stopping: hand the export back at once rather than after the lease.
            with contextlib.suppress(Exception):
                async with transaction(self.sessions) as session:
                    await ExportRepository(session).release(
                        claimed.id, claimed.owner, self.clock.now(), "worker stopped", counted=False
                    )
            raise
        except Exception as error:
            if is_connection_error(error):
                # Not the export's fault: hand it back uncounted (once the database is
                # back), so an outage never uses up its tries.
                log.warning("export %s: database unavailable mid-build", claimed.key)
                await retry_while_unavailable(
                    lambda: self._release_uncounted(claimed, "database unavailable"),
                    what=f"export {claimed.key}: handing back",
                    stopping=self._stopping,
                )
                return True
            log.exception("export %s: build failed", claimed.key)
            await self._failed_attempt(claimed, f"{type(error).__name__}: {error}")
            return True
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        # The files are built: keep trying to record that, rather than build them again.
        await retry_while_unavailable(
            lambda: self._finish(claimed, result),
            what=f"export {claimed.key}: recording the files",
            stopping=self._stopping,
        )
        return True

    async def _release_uncounted(self, claimed: ClaimedExport, reason: str) -> None:
        async with transaction(self.sessions) as session:
            await ExportRepository(session).release(
                claimed.id, claimed.owner, self.clock.now(), reason, counted=False
            )

    async def _renew(self, claimed: ClaimedExport, lost: asyncio.Event) -> None:
        interval = self.options.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            until = self.clock.now() + timedelta(seconds=self.options.lease_seconds)
            try:
                async with transaction(self.sessions) as session:
                    held = await ExportRepository(session).renew(claimed.id, claimed.owner, until)
            except Exception:
                log.exception("export %s: renewing the lease failed", claimed.key)
                continue  # the next renewal may work; the lease has two more thirds to go
            if not held:
                lost.set()
                return

    async def _finish(self, claimed: ClaimedExport, result: BuildResult) -> None:
        formats = tuple(result.sizes)
        body = await self._ready_body(claimed, result, formats)
        async with transaction(self.sessions) as session:
            done = await ExportRepository(session).finish(
                claimed.id, claimed.owner, self.clock.now(), result.row_count, result.sizes
            )
            if done:
                await enqueue_client_event(
                    session,
                    self.clock,
                    claimed.client_id,
                    EXPORT_READY_EVENT,
                    body,
                    url=claimed.callback_url,
                )
        if done:
            log.info("export %s: %d rows", claimed.key, result.row_count)
            return
        # The lease was lost after the files were in place: if the export is gone, so must
        # they be; if another worker took it over, its build replaces them.
        async with self.sessions() as session:
            exists = await ExportRepository(session).exists(claimed.id)
        if not exists:
            await self.storage.delete(claimed.key)

    async def _ready_body(
        self, claimed: ClaimedExport, result: BuildResult, formats: tuple[str, ...]
    ) -> str:
        """The callback: what `GET /rest/stat/list` says of the export, and its rows when
        the JSON file is small enough to carry (else the client fetches a file)."""
        body: dict[str, Any] = {
            "error": 0,
            "key": claimed.key,
            "state": "ready" if result.row_count else "empty",
            "rows": result.row_count,
            "created": format_time(claimed.created_at),
            "expires": format_time(claimed.expires_at),
            "files": file_paths(claimed.key, formats),
        }
        size = result.sizes.get("json")
        if size is not None and size <= self.options.callback_inline_bytes:
            stored = await self.storage.open(claimed.key, "json")
            if stored is not None:
                data = b"".join([chunk async for chunk in stored.chunks()])
                body["message_data"] = orjson.loads(data)["message_data"]
        return orjson.dumps(body).decode()

    async def _failed_attempt(self, claimed: ClaimedExport, error: str) -> None:
        if claimed.attempts >= self.options.max_attempts:
            await self._give_up(claimed, error)
            return
        retry_at = self.clock.now() + timedelta(seconds=self.options.retry_delay)
        async with transaction(self.sessions) as session:
            await ExportRepository(session).release(claimed.id, claimed.owner, retry_at, error)

    async def _give_up(self, claimed: ClaimedExport, error: str) -> None:
        body = orjson.dumps(
            {
                "error": "5",
                "errorDescription": f"Unknown error: the export could not be built ({error})",
                "key": claimed.key,
                "state": "failed",
            }
        ).decode()
        async with transaction(self.sessions) as session:
            if await ExportRepository(session).fail(
                claimed.id, claimed.owner, self.clock.now(), error
            ):
                await enqueue_client_event(
                    session,
                    self.clock,
                    claimed.client_id,
                    EXPORT_FAILED_EVENT,
                    body,
                    url=claimed.callback_url,
                )
        log.warning("export %s failed: %s", claimed.key, error)

    # --- Expiry -------------------------------------------------------------------------

    async def purge(self) -> int:
        """Delete exports a month old, files first (so a crash leaves rows to retry, not
        files no row points to), then unfinished or ownerless files left by crashes."""
        now = self.clock.now()
        purged = 0
        while True:
            async with self.sessions() as session:
                expired = await ExportRepository(session).expired(now, PURGE_BATCH)
            for _, key in expired:
                await self.storage.delete(key)
            async with transaction(self.sessions) as session:
                await ExportRepository(session).delete_ids([export_id for export_id, _ in expired])
            purged += len(expired)
            if len(expired) < PURGE_BATCH:
                break
        async with self.sessions() as session:
            known = await ExportRepository(session).keys()
        await self.storage.sweep(known, stale_after=self.options.stale_part_seconds)
        return purged
