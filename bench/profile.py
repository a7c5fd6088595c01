"""Reading `py-spy record --format raw --threads` output: where the server's time goes.

Each line is `thread (tid): name;frame;frame;... count`, a frame `function (file:line)`.
Shares are of a thread's samples. py-spy's idle detection does not see uvloop's wait in
epoll, so samples are not CPU time: take the server's CPU from the bench table (psutil).

`python -m bench.profile FILE [--seconds S] [--rate R]` prints the same summary.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")

# Leaf-frame files, bucketed: "share of time in X" is the first thing to know.
CATEGORIES = (
    ("tidings", ("tidings/",)),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("sqlite3/aiosqlite", ("sqlite3/", "aiosqlite/")),
    ("asyncpg", ("asyncpg/",)),
    ("uvicorn/httptools", ("uvicorn/", "httptools/", "h11/")),
    ("starlette/fastapi", ("starlette/", "fastapi/")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("asyncio/uvloop", ("asyncio/", "uvloop/", "selectors.py")),
    ("phonenumbers", ("phonenumbers/",)),
    ("decimal/datetime", ("decimal", "_pydecimal", "datetime")),
    ("threading/queue", ("threading.py", "queue.py", "concurrent/")),
    ("json/orjson", ("json/", "orjson")),
)


# Frames every stack of the main thread passes through: start-up, not work.
ROOT_MARKERS = (
    "typer/",
    "click/",
    "runpy",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "tidings/cli/main.py",
    "uvicorn/server.py",
    "uvicorn/main.py",
    "uvicorn/_compat.py",
    "bench/instrumented.py",
    "<module>",
    "threading.py",
)


def is_root(key: str) -> bool:
    return any(marker in key for marker in ROOT_MARKERS)


def category(path: str) -> str:
    for name, markers in CATEGORIES:
        if any(marker in path for marker in markers):
            return name
    return "other"


def short_path(path: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


@dataclass
class ThreadProfile:
    name: str
    samples: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    self_time: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    # Sub-stacks below the first tidings frame that matter: "function -> callee".
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)
    # The deepest tidings function of each sample; for SQLAlchemy's async bridge, whose
    # greenlet stacks start at Session.execute with no caller, the ORM operation instead.
    owners: Counter[str] = field(default_factory=Counter)


def _frame_key(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    path = short_path(match["file"])
    return f"{match['func']} ({path})", path


def parse(path: Path) -> dict[str, ThreadProfile]:
    threads: dict[str, ThreadProfile] = {}
    for raw in path.read_text("utf-8", "replace").splitlines():
        stack_text, _, count_text = raw.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        head = frames[0]
        name = head.split(": ", 1)[1] if ": " in head else head
        name = "MainThread" if name == "MainThread" else re.sub(r"\d+", "N", name)
        profile = threads.setdefault(name, ThreadProfile(name))
        profile.samples += count
        keys = [_frame_key(f) for f in frames[1:]]
        if not keys:
            profile.self_time["(no Python frame)"] += count
            profile.categories["other"] += count
            continue
        for key in {k for k, _ in keys}:
            profile.inclusive[key] += count
        leaf, leaf_path = keys[-1]
        profile.self_time[leaf] += count
        profile.categories[category(leaf_path)] += count
        for (caller, _), (callee, _) in itertools.pairwise(keys):
            profile.edges[(caller, callee)] += count
        profile.owners[_owner(keys)] += count
    return threads


def _owner(keys: list[tuple[str, str]]) -> str:
    work = [(k, p) for k, p in keys if not is_root(k)]
    ours = [k for k, p in work if p.startswith("tidings/")]
    if ours:
        return ours[-1]
    if not work:
        return "(event loop: uvloop/C, no Python frame)"
    first, first_path = work[0]
    if first_path.startswith("sqlalchemy/"):
        # Inside greenlet_spawn: name the ORM operation (e.g. BulkORMUpdate).
        op = next(
            (k for k, _ in work[1:5] if "orm_execute_statement" in k or "_flush" in k),
            work[min(2, len(work) - 1)][0],
        )
        return f"[SQLAlchemy greenlet] {first.split(' (')[0]} > {op}"
    return f"[{category(first_path)}] {first}"


def summarize(
    path: Path, *, seconds: float | None = None, rate: int = 100, top: int = 18
) -> list[str]:
    threads = parse(path)
    lines = [f"profile {path}"]
    for profile in sorted(threads.values(), key=lambda t: -t.samples):
        if profile.samples < 5:
            continue
        window = f" over {seconds:.0f} s at {rate} Hz" if seconds else ""
        lines.append(f"  thread {profile.name}: {profile.samples} samples{window}")
        total = profile.samples
        cats = ", ".join(
            f"{name} {100 * n / total:.0f}%" for name, n in profile.categories.most_common(8)
        )
        lines.append(f"    self time by package: {cats}")
        lines.append("    by owner (deepest tidings function, or the ORM operation):")
        for key, n in profile.owners.most_common(top // 2):
            lines.append(f"      {100 * n / total:5.1f}%  {key}")
        lines.append("    inclusive (share of this thread's samples):")
        shown = 0
        for key, n in profile.inclusive.most_common():
            if n / total > 0.97 or is_root(key):
                continue
            lines.append(f"      {100 * n / total:5.1f}%  {key}")
            shown += 1
            if shown >= top:
                break
        lines.append("    self:")
        for key, n in profile.self_time.most_common(10):
            lines.append(f"      {100 * n / total:5.1f}%  {key}")
    return lines


def callees(path: Path, function: str, thread: str = "MainThread", top: int = 15) -> list[str]:
    """Where the time under `function` (a substring of the frame key) goes, one level down."""
    profile = parse(path).get(thread)
    if profile is None:
        return [f"no thread {thread}"]
    below: Counter[str] = Counter()
    for (caller, callee), n in profile.edges.items():
        if function in caller:
            below[callee] += n
    totals = defaultdict(int)
    for key, n in profile.inclusive.items():
        if function in key:
            totals[key] += n
    lines = [f"under {function}: " + ", ".join(f"{k} {n}" for k, n in totals.items())]
    for key, n in below.most_common(top):
        lines.append(f"  {100 * n / max(profile.samples, 1):5.1f}%  {key}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--under", help="list the callees of functions matching this text")
    parser.add_argument("--thread", default="MainThread")
    args = parser.parse_args()
    if args.under:
        print("\n".join(callees(args.file, args.under, args.thread, args.top)))
    else:
        print("\n".join(summarize(args.file, seconds=args.seconds, rate=args.rate, top=args.top)))


if __name__ == "__main__":
    main()
