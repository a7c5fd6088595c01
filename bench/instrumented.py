"""`tidings serve` with every SQL statement counted: `python -m bench.instrumented serve`.

Used by `python -m bench.run --query-stats`. Listens on SQLAlchemy's Engine class (so it
sees the app's engines without touching src/), and on exit writes to the JSON file named by
BENCH_QUERY_STATS, per statement: executions, parameter sets (executemany rows) and the
seconds between the cursor call and its return (the statement's latency as the event loop
sees it, including the hop to aiosqlite's thread). SIGUSR1 clears the counts (the window
opens), SIGUSR2 writes them (the window closes); exit writes them too.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_SPACES = re.compile(r"\s+")
_IN_LIST = re.compile(r"\((?:\s*(?:\?|\$\d+|%\(\w+\)s|__\[POSTCOMPILE_\w+\])\s*,?)+\)")
_VALUES = re.compile(r"VALUES\s*\(.*", re.S)

stats: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
_lock = threading.Lock()


def normalize(statement: str) -> str:
    text = _SPACES.sub(" ", statement).strip()
    text = _IN_LIST.sub("(…)", text)
    text = _VALUES.sub("VALUES (…)", text)
    return text[:160]


@event.listens_for(Engine, "before_cursor_execute")
def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
    # Keyed here, by the statement as sent: an "insertmanyvalues" batch that SQLAlchemy runs
    # row by row fires this once per row, while its after-event repeats the whole statement.
    rows = len(params) if many and params and isinstance(params[0], list | tuple | dict) else 1
    conn.info.setdefault("bench_stack", []).append(
        (normalize(statement), rows, time.perf_counter())
    )


@event.listens_for(Engine, "after_cursor_execute")
def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
    stack = conn.info.get("bench_stack")
    if not stack:
        return
    key, rows, started = stack.pop()
    elapsed = time.perf_counter() - started
    with _lock:
        entry = stats[key]
        entry[0] += 1
        entry[1] += rows
        entry[2] += elapsed


def _dump() -> None:
    target = os.environ.get("BENCH_QUERY_STATS")
    if not target:
        return
    with _lock:
        rows = [
            {"statement": k, "executions": int(v[0]), "rows": int(v[1]), "seconds": v[2]}
            for k, v in stats.items()
        ]
    partial = Path(f"{target}.partial")
    partial.write_text(json.dumps(rows, indent=1), "utf-8")
    os.replace(partial, target)


_wake = threading.Event()
_pending: list[str] = []


def _signals() -> None:
    """A helper thread does what the signals ask, so no handler waits on `_lock`."""
    while True:
        _wake.wait()  # no timeout: an idle thread, not a polling one
        _wake.clear()
        while _pending:
            if _pending.pop(0) == "reset":
                with _lock:
                    stats.clear()
            else:
                _dump()
                _frozen.set()


def _ask(what: str) -> None:
    _pending.append(what)
    _wake.set()


_frozen = threading.Event()


def main() -> None:
    atexit.register(lambda: None if _frozen.is_set() else _dump())
    signal.signal(signal.SIGUSR1, lambda *_: _ask("reset"))
    signal.signal(signal.SIGUSR2, lambda *_: _ask("write"))
    threading.Thread(target=_signals, name="bench-query-stats", daemon=True).start()
    # uvicorn handles SIGINT itself and returns normally, so atexit runs; SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from tidings.cli.main import main as tidings_main

    sys.argv = ["tidings", *sys.argv[1:]]
    tidings_main()


if __name__ == "__main__":
    main()
