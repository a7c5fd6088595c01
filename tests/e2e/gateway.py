"""Runs the real `tidings` command as a subprocess, on loopback, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

TIDINGS = str(Path(sys.executable).with_name("tidings"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gateway:
    def __init__(self, database_url: str, workdir: Path, **settings: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.env = {
            **os.environ,
            "TIDINGS_DATABASE_URL": database_url,
            "TIDINGS_HTTP_HOST": "127.0.0.1",
            "TIDINGS_HTTP_PORT": str(self.port),
            "TIDINGS_LOG_LEVEL": "WARNING",
            **{f"TIDINGS_{key.upper()}": value for key, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    def import_prices(self, csv_text: str) -> None:
        path = self.workdir / "prices.csv"
        path.write_text(csv_text)
        self.cli("prices", "import", str(path))

    def cli(self, *args: str) -> Any:
        """Run an admin command with --json and return what it printed."""
        done = subprocess.run(
            [TIDINGS, *args, "--json"],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return json.loads(done.stdout)

    def start(self, *args: str, timeout: float = 60, command: str = "serve") -> None:
        """Start `tidings serve` (or `command`: `api`) and wait until it answers /health."""
        self._close_log()
        self._log = (self.workdir / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [TIDINGS, command, *args],
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError((self.workdir / "serve.log").read_text()[-3000:])
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError("the gateway did not become healthy")

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        self._close_log()


@contextmanager
def two_nodes(
    database_url: str, tmp_path: Path, **settings: str
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways, not started, for chaining: A on the database under test; B, the upstream,
    on its own SQLite file. Both are stopped on the way out."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Gateway(database_url, tmp_path / "a", **settings)
    b = Gateway(f"sqlite:///{tmp_path / 'b' / 'b.db'}", tmp_path / "b", **settings)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
