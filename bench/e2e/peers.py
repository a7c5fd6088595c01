"""The peers of a round: the callback receiver and the SMSC simulator, each its own process."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.e2e.procs import HOST, Child, wait_port

REPO = Path(__file__).resolve().parent.parent.parent


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@dataclass
class Peers:
    workdir: Path
    receiver_port: int
    smsc_port: int
    receipt_delay: float = 2.0
    receiver: Child | None = None
    smsc: Child | None = None

    @property
    def smsc_stats_path(self) -> Path:
        return self.workdir / "smsc-stats.json"

    @property
    def callback_base(self) -> str:
        return f"http://{HOST}:{self.receiver_port}"

    def start(self) -> None:
        env = _python_env()
        self.receiver = Child(
            "receiver",
            [sys.executable, "-m", "bench.e2e.receiver", "--port", str(self.receiver_port)],
            self.workdir / "receiver.log",
            env=env,
            cwd=REPO,
        ).start()
        self.smsc = Child(
            "smsc",
            [
                sys.executable,
                "-m",
                "bench.e2e.smsc",
                "--port",
                str(self.smsc_port),
                "--receipt-delay",
                str(self.receipt_delay),
                "--stats",
                str(self.smsc_stats_path),
            ],
            self.workdir / "smsc.log",
            env=env,
            cwd=REPO,
        ).start()
        wait_port(self.receiver_port, 30, [self.receiver])
        wait_port(self.smsc_port, 30, [self.smsc])

    def callbacks(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.callback_base}/stats", timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def smsc_stats(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data: dict[str, Any] = json.loads(self.smsc_stats_path.read_text("utf-8"))
            return data
        return {"binds": 0, "submits": 0, "receipts": 0}

    def wait_bound(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.smsc_stats().get("binds", 0) >= 1:
                return True
            time.sleep(0.2)
        return False

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in (self.receiver, self.smsc) if c is not None and c.running}

    def stop(self) -> None:
        for child in (self.smsc, self.receiver):
            if child is not None:
                child.stop()
