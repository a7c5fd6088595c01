"""`python -m bench.idle`: what an idle gateway costs, in per cent of one core.

Starts `tidings serve --demo` (every process it runs: `--processes`, default one per core) on a
fresh SQLite file, or `--database-url`, waits `--settle` seconds for start-up to end, then
measures the CPU of the whole process tree over `--seconds` with nothing to do. The target is
under 1 % of a core: loops sleep until a commit wakes them (tidings/wakeups.py) and look on
their own only every TIDINGS_IDLE_POLL seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.server import TIDINGS, tree_cpu_seconds
from bench.webhooks import _wait_listening, free_port

TARGET = 1.0  # per cent of one core


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidings-idle-") as tmp:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")},
            "TIDINGS_DATABASE_URL": args.database_url or f"sqlite:///{Path(tmp) / 'idle.db'}",
            "TIDINGS_HTTP_PORT": str(port),
        }
        command = [str(TIDINGS), "serve", "--demo"]
        if args.processes is not None:
            command.append(f"--processes={args.processes}")
        with (Path(tmp) / "serve.log").open("wb") as log:
            server = subprocess.Popen(command, env=env, cwd=tmp, stdout=log, stderr=log)
            try:
                _wait_listening(port, limit=120)
                time.sleep(args.settle)
                process = psutil.Process(server.pid)
                members = 1 + len(process.children(recursive=True))
                before = tree_cpu_seconds(process)
                time.sleep(args.seconds)
                spent = tree_cpu_seconds(process) - before
            finally:
                server.terminate()
                try:
                    server.wait(20)
                except subprocess.TimeoutExpired:
                    server.kill()
    share = 100 * spent / args.seconds
    print(
        f"idle `tidings serve` ({members} processes): {spent:.2f} s of CPU in "
        f"{args.seconds:.0f} s = {share:.2f} % of a core (target < {TARGET:g} %)"
    )
    return 0 if share < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
