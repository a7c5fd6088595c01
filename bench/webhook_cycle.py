"""`python -m bench.webhook_cycle`: CPU per delivery of the webhook statements, no HTTP.

The database side of one delivery report, timed with `time.process_time` (the driver's
thread included) on a fresh SQLite (or PostgreSQL, with --database-url) database: enqueue
(`enqueue_reports` in batches of --enqueue-batch changes, as `apply_changes` calls it), claim
(`WebhookWorker._claim` of --claim-batch) and record (`WebhookRepository.record` of what
was claimed, answered 200), claims and records alternating as the worker's loops do. The
garbage collector is off while timing, so that one collection does not land in one phase.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tidings.accounts.service import Caller, KeyKind, create_client
from tidings.billing.service import import_prices
from tidings.clock import FrozenClock
from tidings.db.engine import create_engine, create_sessionmaker, transaction
from tidings.db.migrate import upgrade
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.changes import AppliedChange, StatusChange
from tidings.messages.repository import MessageRepository
from tidings.messages.status import Status
from tidings.messages.storing import accept_sms
from tidings.numbering import CountryTable
from tidings.routing.service import create_route, create_supplier
from tidings.webhooks.repository import WebhookRepository
from tidings.webhooks.service import Response, enqueue_reports, outcome_of
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\n"


async def measure(
    database_url: str, count: int, enqueue_batch: int, claim_batch: int
) -> dict[str, float]:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    try:
        async with transaction(sessions) as session:
            await import_prices(session, CountryTable.load(), PRICES)
            created = await create_client(
                session,
                clock,
                name="bench",
                balance=Decimal(10**6),
                callback_url="http://127.0.0.1:9/hook",
            )
            supplier = await create_supplier(
                session, clock, name="sim", kind="simulator", options={}
            )
            await create_route(session, clock, type_="sms", supplier=supplier.name)
        caller = Caller(client_id=created.client.id, key_kind=KeyKind.LIVE, tariff=0)
        ids: list[int] = []
        for start in range(0, count, 1000):
            items = [
                SmsItem(str(380970000000 + start + i), None, "bench", "hi")
                for i in range(min(1000, count - start))
            ]
            async with transaction(sessions) as session:
                accepted = await accept_sms(
                    session, clock, caller, SmsRequest("phones", items), Limits()
                )
            ids += [item.id for item in accepted.items]
        async with transaction(sessions) as session:
            records = await MessageRepository(session).lock_for_update(ids)
        clock.advance(1)
        now = clock.now()
        worker = WebhookWorker(sessions, clock, WebhookOptions())
        answer = Response(at=now, duration_ms=3, status_code=200, body=b"ok")
        spent = {"enqueue": 0.0, "claim": 0.0, "record": 0.0}
        gc.collect()
        gc.disable()
        try:
            for start in range(0, count, enqueue_batch):
                applied = [
                    AppliedChange(r, Status.QUEUED, StatusChange(r.id, Status.DELIVERED, now))
                    for r in records[start : start + enqueue_batch]
                ]
                async with transaction(sessions) as session:
                    await session.connection()  # begun already in `apply_changes`
                    began = time.process_time()
                    await enqueue_reports(session, clock, applied)
                    spent["enqueue"] += time.process_time() - began
            done = 0
            while True:
                began = time.process_time()
                claimed = await worker._claim(claim_batch)
                spent["claim"] += time.process_time() - began
                if not claimed:
                    break
                done += len(claimed)
                outcomes = [outcome_of(d, answer, now) for d in claimed]
                began = time.process_time()
                async with transaction(sessions) as session:
                    await WebhookRepository(session).record(outcomes)
                spent["record"] += time.process_time() - began
                worker._held.clear()  # recorded: as `_flush` frees their places
                worker._held_per_host.clear()
        finally:
            gc.enable()
        assert done == count, f"{done} of {count} claimed"
        return spent
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--enqueue-batch", type=int, default=20)
    parser.add_argument("--claim-batch", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(upgrade(database_url))
        spent = asyncio.run(measure(database_url, args.count, args.enqueue_batch, args.claim_batch))
    per = {phase: seconds * 1e6 / args.count for phase, seconds in spent.items()}
    print(
        "  ".join(f"{phase} {us:.1f}" for phase, us in per.items())
        + f"  total {sum(per.values()):.1f} µs CPU per delivery"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
