"""Subprocesses of the benchmark: started in their own session, stopped by pid, CPU summed.

Every process is started with `start_new_session=True`, so its process group id is its pid:
`stop` signals that group (the process and whatever it forked, e.g. uvicorn workers) and
nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float, alive: Sequence[Child] = ()) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in alive:
            if not child.running:
                raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


@dataclass
class Child:
    """One subprocess with its log file; `stop()` is safe to call twice."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text("utf-8", "replace")[-chars:]
        return ""

    def stop(self, first: signal.Signals = signal.SIGTERM, grace: float = 15.0) -> None:
        """`first` to the process group, then SIGKILL to it after `grace` seconds."""
        if self.popen is None:
            return
        popen, self.popen = self.popen, None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, first)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=grace)
        # Whatever is left in the group (forked workers): killed, by the group's id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=10)


@dataclass
class CpuMeter:
    """CPU seconds (user + system) of some process trees, from a start to now.

    Children appear and may exit while measured, so a thread samples every process of each
    tree every `interval` s and keeps the last reading per pid; a process that exits between
    two samples loses at most `interval` s of its CPU from the count.
    """

    roots: list[int]
    interval: float = 0.25
    extra: list[int] = field(default_factory=list)  # single pids, not trees
    # Pids that come and go (PostgreSQL backends), looked up every `find_every` samples.
    finder: Callable[[], list[int]] | None = None
    find_every: int = 4
    _samples: int = 0
    _start: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _processes(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in self.roots:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                found[pid] = root
                for child in root.children(recursive=True):
                    found[child.pid] = child
        if self.finder is not None and self._samples % self.find_every == 0:
            self.extra = sorted(set(self.extra) | set(self.finder()))
        self._samples += 1
        for pid in self.extra:
            with contextlib.suppress(psutil.Error):
                found[pid] = psutil.Process(pid)
        return list(found.values())

    def sample(self) -> None:
        readings: dict[int, float] = {}
        for process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                readings[process.pid] = float(times.user + times.system)
        with self._lock:
            for pid, cpu in readings.items():
                # A pid first seen after the start counts from zero: all its CPU is in the window.
                self._start.setdefault(pid, 0.0 if self._thread is not None else cpu)
                self._last[pid] = cpu

    def start(self) -> CpuMeter:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 86_400  # bounded: a day at most
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            self.sample()

    def seconds(self) -> float:
        """CPU seconds since `start` (a fresh sample first)."""
        self.sample()
        with self._lock:
            return sum(self._last[pid] - self._start.get(pid, 0.0) for pid in self._last)

    def stop(self) -> float:
        total = self.seconds()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return total


def postgres_backends(database: str) -> list[int]:
    """The server processes of one PostgreSQL database, by their process titles
    (`postgres: 15/main: USER DATABASE HOST(PORT) STATE`): readable without a connection."""
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            title = " ".join(process.info["cmdline"] or [])
            if title.startswith("postgres:") and f" {database} " in title:
                pids.append(process.pid)
    return pids
