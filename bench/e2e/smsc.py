"""The SMSC simulator, on smpp34's (third-party, Rust) SMPP server: not Tidings' own code.

    python -m bench.e2e.smsc --port N --stats FILE [--receipt-delay 2.0]

Every bind is accepted. Each `submit_sm` is answered at once with a decimal message id; a
`DELIVRD` receipt (`deliver_sm`, esm_class 4, the standard receipt text) goes back on the same
session `--receipt-delay` seconds later. The counts (submits, receipts sent, receipts the
ESME refused, binds) are written to `--stats` as JSON every 0.5 s and at exit (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import smpp34

STAT_INTERVAL = 0.5


@dataclass
class SmscStats:
    binds: int = 0
    submits: int = 0
    receipts: int = 0
    receipts_refused: int = 0
    receipt_errors: int = 0
    first_submit_at: float | None = None
    last_submit_at: float | None = None
    last_receipt_at: float | None = None


def receipt_text(message_id: str, submitted: datetime, done: datetime, body: bytes) -> bytes:
    """The de-facto standard receipt text (SMPP 3.4 appendix B)."""
    return (
        f"id:{message_id} sub:001 dlvrd:001 submit date:{submitted:%y%m%d%H%M} "
        f"done date:{done:%y%m%d%H%M} stat:DELIVRD err:000 text:"
    ).encode() + body[:20]


class Simulator:
    def __init__(self, port: int, receipt_delay: float, stats_path: Path | None) -> None:
        self.port = port
        self.server = smpp34.Server(host="127.0.0.1", port=port, system_id="SimSMSC")
        self.receipt_delay = receipt_delay
        self.stats_path = stats_path
        self.stats = SmscStats()
        self.esmes: dict[str, smpp34.Esme] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 1_000_000

    def write_stats(self) -> None:
        if self.stats_path is None:
            return
        temporary = self.stats_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.stats)), "utf-8")
        os.replace(temporary, self.stats_path)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.esmes[event.session_id] = event
                self.stats.binds += 1
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._next_id += 1
                message_id = str(self._next_id)
                event.accept(message_id=message_id)
                now = time.monotonic()
                self.stats.submits += 1
                self.stats.last_submit_at = now
                if self.stats.first_submit_at is None:
                    self.stats.first_submit_at = now
                if event.registered_delivery & 0x03:
                    task = loop.create_task(self._receipt(event, message_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _receipt(self, event: smpp34.SubmitSmEvent, message_id: str) -> None:
        submitted = datetime.now(UTC)
        await asyncio.sleep(self.receipt_delay)
        esme = self.esmes.get(event.session_id)
        if esme is None:
            self.stats.receipt_errors += 1
            return
        text = receipt_text(message_id, submitted, datetime.now(UTC), event.short_message)
        try:
            answer = await esme.deliver_sm(
                event.source_addr,
                text,
                source_addr=event.destination_addr,
                esm_class=0x04,
            )
        except smpp34.SmppError:
            self.stats.receipt_errors += 1
            return
        if answer.command_status == 0:
            self.stats.receipts += 1
            self.stats.last_receipt_at = time.monotonic()
        else:
            self.stats.receipts_refused += 1

    async def _write_stats_forever(self) -> None:
        while True:
            self.write_stats()
            await asyncio.sleep(STAT_INTERVAL)

    async def run(self) -> None:
        await self.server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        serving = loop.create_task(self.serve())
        writing = loop.create_task(self._write_stats_forever())
        print(f"listening on 127.0.0.1:{self.port}", flush=True)
        await stop.wait()
        for task in [serving, writing, *self._tasks]:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(serving, writing, *self._tasks, return_exceptions=True)
        self.write_stats()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.stop(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--receipt-delay", type=float, default=2.0)
    parser.add_argument("--stats", type=Path)
    args = parser.parse_args()
    asyncio.run(Simulator(args.port, args.receipt_delay, args.stats).run())


if __name__ == "__main__":
    main()
