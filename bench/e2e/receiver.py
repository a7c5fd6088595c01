"""The callback receiver: a `ThreadingHTTPServer` answering 200, counting callbacks per message.

    python -m bench.e2e.receiver --port N

It takes both gateways' callbacks:

- Tidings (webhook format `ketchup`): `POST` with the message's status object as JSON; the
  message is its `reference`, the kind its `status` (`sent`, `delivered`, ...).
- Kannel (`dlr-url` with `dlr-mask=31`): `GET /kannel?ref=REF&type=%d`; the kind is Kannel's
  DLR type (8 accepted by the SMSC, 1 delivered, 2 undelivered, 16 rejected, 4 buffered).

`GET /stats` answers the counts as JSON; `POST /reset` clears them. Times are
`time.monotonic()` (CLOCK_MONOTONIC: one clock for every process of the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TIDINGS_FINAL = frozenset({"delivered", "undelivered", "expired", "rejected", "failed", "unknown"})
KANNEL_KINDS = {
    "1": "delivered",
    "2": "undelivered",
    "4": "buffered",
    "8": "sent",
    "16": "rejected",
}
KANNEL_FINAL = frozenset({"delivered", "undelivered", "rejected"})


@dataclass
class Tally:
    """Callbacks per message: each (reference, kind) once is normal, again is a duplicate."""

    seen: dict[str, set[str]] = field(default_factory=dict)
    finals: set[str] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)
    callbacks: int = 0
    duplicates: int = 0
    unparsed: int = 0
    first_at: float | None = None
    last_at: float | None = None
    last_final_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, reference: str | None, kind: str | None, final: bool) -> None:
        now = time.monotonic()
        with self.lock:
            self.callbacks += 1
            if self.first_at is None:
                self.first_at = now
            self.last_at = now
            if not reference or not kind:
                self.unparsed += 1
                return
            self.kinds[kind] += 1
            kinds = self.seen.setdefault(reference, set())
            if kind in kinds:
                self.duplicates += 1
                return
            kinds.add(kind)
            if final:
                if reference in self.finals:
                    self.duplicates += 1  # a second, different final status
                else:
                    self.finals.add(reference)
                    self.last_final_at = now

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "callbacks": self.callbacks,
                "messages": len(self.seen),
                "finals": len(self.finals),
                "duplicates": self.duplicates,
                "unparsed": self.unparsed,
                "kinds": dict(self.kinds),
                "first_at": self.first_at,
                "last_at": self.last_at,
                "last_final_at": self.last_final_at,
            }

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
            self.finals.clear()
            self.kinds.clear()
            self.callbacks = self.duplicates = self.unparsed = 0
            self.first_at = self.last_at = self.last_final_at = None


def classify_kannel(query: str) -> tuple[str | None, str | None, bool]:
    params = parse_qs(query)
    reference = params.get("ref", [None])[0]
    raw = params.get("type", [None])[0]
    kind = KANNEL_KINDS.get(raw or "", f"type{raw}") if raw else None
    return reference, kind, kind in KANNEL_FINAL


def classify_tidings(body: bytes) -> tuple[str | None, str | None, bool]:
    try:
        data = json.loads(body)
    except ValueError:
        return None, None, False
    if not isinstance(data, dict):
        return None, None, False
    reference, kind = data.get("reference"), data.get("status")
    reference = str(reference) if reference is not None else None
    kind = str(kind) if kind is not None else None
    return reference, kind, kind in TIDINGS_FINAL


def make_handler(tally: Tally) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as any receiver in production would

        def _answer(self, body: bytes = b"ok", content_type: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/stats":
                self._answer(json.dumps(tally.snapshot()).encode(), "application/json")
                return
            tally.record(*classify_kannel(url.query))
            self._answer()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            if url.path == "/reset":
                tally.reset()
            elif url.path == "/kannel":
                tally.record(*classify_kannel(url.query or body.decode("latin-1")))
            else:
                tally.record(*classify_tidings(body))
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per callback would cost more than the callback

    return Handler


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def serve(port: int, host: str = "127.0.0.1") -> None:
    tally = Tally()
    with Receiver((host, port), make_handler(tally)) as server:
        print(f"listening on {host}:{port}", flush=True)
        server.serve_forever(poll_interval=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.port, args.host)


if __name__ == "__main__":
    main()
