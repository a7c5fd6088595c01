"""`tidings serve --processes N`: one event loop per core, sharing the listening socket.

One Python process runs one event loop on one core. The parent binds the HTTP socket once
and starts N children; the work is spread by role (`roles_for`): child 0 takes the HTTP
requests and the SMPP server's binds, child 1 runs the background loops (supplier lanes,
receipts, webhooks, HLR, exports) and serves no HTTP, any further child takes requests and
sends webhooks (the kernel spreads connections over the children that listen). The
database is what they share: every claim is a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite), and a commit wakes the loop that has work in
whichever process it runs (tidings/wakeups.py).

Children die with the parent (`PR_SET_PDEATHSIG`), so `kill -9` of `tidings serve` ends the
whole gateway, as it did with one process, and a restart can bind the port again. A child
that exits on its own is restarted after a pause.

On Linux the children are forked from the parent, which has imported the application and
run no event loop, engine or thread since (its migrations and demo set-up ran to completion
in `asyncio.run` before): a child is up in well under a second instead of re-importing
everything, which matters on a loaded machine. Each child builds its own engine, event loop
and workers. Elsewhere they are spawned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from tidings.api.app import Roles
from tidings.config import Settings

log = logging.getLogger("tidings")

_PR_SET_PDEATHSIG = 1
RESTART_PAUSE = 1.0


def roles_for(index: int, count: int, *, with_workers: bool = True) -> Roles:
    """Which loops child `index` of `count` runs, and whether it serves HTTP.

    With two processes, the first takes the HTTP requests (and the SMPP server's binds) and
    nothing else, the second runs every background loop — supplier lanes, receipts, the
    sweeper, the webhook sender, HLR and exports — and serves no HTTP. What a client waits
    for is its request's group commit (messages/writer.py): on a loop of its own it comes
    round sooner, and the commits carry every request in flight (not half of them each, as
    with HTTP in both). Measured on the end-to-end benchmark (SQLite, 2 cores, 8
    connections): 585–589 final callbacks/s at 1.86 ms of CPU a message, against 512–519/s
    at 2.15 ms with the lanes beside the HTTP API, and 3.7 ms with HTTP in both processes.
    A third process and beyond take requests and send webhooks.
    """
    if not with_workers:  # the API alone; the SMPP server (if any) in one of them
        return Roles(delivery=False, webhooks=False, background=False, smpp=index == 0)
    if count <= 1:
        return Roles()
    if index == 0:
        return Roles(delivery=False, webhooks=False, background=False, smpp=True)
    if index == 1:
        return Roles(smpp=False, http=False)
    return Roles(delivery=False, webhooks=True, background=False, smpp=False)


def core_count() -> int:
    """The cores this process may run on: how many processes `serve` and `worker` run by
    default.

    On SQLite as on PostgreSQL: the first process takes the HTTP requests, the second runs
    the background loops (`roles_for`). Measured on the end-to-end benchmark (SQLite,
    2 cores, bench/README.md): 585–589 final callbacks/s at 1.86 ms of CPU a message against
    439/s at 2.15 ms with one process.
    """
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def uvicorn_config(settings: Settings, app: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's records go through our JSON handler too
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


class QuietServer(uvicorn.Server):
    """uvicorn's server with its housekeeping tick once a second instead of ten times.

    The tick refreshes the Date header (one-second resolution anyway) and looks for the exit
    flag; ten wake-ups a second per process were most of an idle gateway's CPU. A signal
    wakes the loop at once, so shutting down is not slower.
    """

    _exit: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864_000  # every tick is a "once a second" tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._exit is not None:
            self._loop.call_soon_threadsafe(self._exit.set)


def serve_processes(settings: Settings, count: int, *, with_workers: bool = True) -> None:
    """Bind the socket, run `count` children until SIGINT/SIGTERM, restarting any that die."""
    listener = uvicorn_config(settings, None).bind_socket()
    # Where each child announces its own metrics port (observability/group.py).
    group_folder = Path(tempfile.mkdtemp(prefix="tidings-serve-"))
    try:
        supervise(
            count,
            _child_main,
            lambda index: (index, count, with_workers, listener, group_folder),
            f"tidings serve: {count} processes on http://{settings.http_host}:{settings.http_port}",
        )
    finally:
        listener.close()
        shutil.rmtree(group_folder, ignore_errors=True)


def worker_processes(count: int, metrics_port: int | None) -> None:
    """`tidings worker --processes N`: the loops spread over N children (cli/worker.py);
    with a metrics port, child i serves its own /metrics on that port + i."""
    supervise(
        count,
        _worker_child_main,
        lambda index: (index, count, metrics_port),
        f"tidings worker: {count} processes",
    )


def supervise(
    count: int,
    target: Callable[..., None],
    arguments: Callable[[int], tuple[Any, ...]],
    announcement: str,
) -> None:
    """Run `target(*arguments(i))` in children 0..count-1 until SIGINT/SIGTERM, restarting
    any that dies; on the way out, SIGTERM to every child, SIGKILL after 15 s."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context: Any = multiprocessing.get_context(method)
    children: dict[int, BaseProcess] = {}
    stopping = threading.Event()

    def start(index: int) -> None:
        name = announcement.split(":", 1)[0].replace(" ", "-")
        child = context.Process(target=target, args=arguments(index), name=f"{name}-{index}")
        child.start()
        children[index] = child

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    wakeup_reader, wakeup_writer = os.pipe()
    os.set_blocking(wakeup_reader, False)
    os.set_blocking(wakeup_writer, False)
    previous_wakeup = signal.set_wakeup_fd(wakeup_writer)
    try:
        for index in range(count):
            start(index)
        pids = " ".join(str(c.pid) for c in children.values())
        print(f"{announcement} (pids {pids})", file=sys.stderr, flush=True)
        while not stopping.is_set():
            # Asleep until a child ends or a signal comes (the wake-up pipe), not polling.
            multiprocessing.connection.wait(
                [child.sentinel for child in children.values()] + [wakeup_reader]
            )
            with contextlib.suppress(BlockingIOError):
                os.read(wakeup_reader, 512)
            for index, child in list(children.items()):
                if child.exitcode is not None and not stopping.is_set():
                    log.error(
                        "process %d (pid %s) exited with %s; restarting",
                        index,
                        child.pid,
                        child.exitcode,
                    )
                    time.sleep(RESTART_PAUSE)
                    start(index)
    finally:
        for child in children.values():
            if child.exitcode is None and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            child.join(max(0.0, deadline - time.monotonic()))
            if child.exitcode is None:
                child.kill()
                child.join(2)
        signal.set_wakeup_fd(previous_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wakeup_reader)
        os.close(wakeup_writer)


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def _child_main(
    index: int, count: int, with_workers: bool, listener: socket.socket, group_folder: Path
) -> None:
    _die_with_parent()
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # the parent's pipe, inherited by the fork: not ours
    from tidings.api.app import create_app
    from tidings.observability.logging import configure_logging
    from tidings.runtime import tune_gc_for_service

    settings = Settings()
    configure_logging(settings.log_level)
    roles = roles_for(index, count, with_workers=with_workers)
    app = create_app(settings, roles=roles, process_group=(group_folder, index))
    server = QuietServer(uvicorn_config(settings, app))
    tune_gc_for_service()
    # Without HTTP, uvicorn still runs the app's lifespan (its loops) and stops on a signal.
    server.run(sockets=[listener] if roles.http else [])


def _worker_child_main(index: int, count: int, metrics_port: int | None) -> None:
    _die_with_parent()
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    from tidings.cli.common import run_service
    from tidings.cli.worker import run_worker, worker_roles
    from tidings.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    port = None if metrics_port is None else metrics_port + index
    run_service(lambda: run_worker(settings, worker_roles(index, count), port))
