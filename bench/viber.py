"""Viber messages per second end to end, half of them falling back to SMS.

    .venv/bin/python -m bench.viber [--messages 20000] [--database sqlite] [--max-seconds 300]

Seeds a fresh database through the CLI (the bench client, SMS and Viber prices, a zero-delay
SMS simulator, a Viber simulator where half the numbers have no Viber account, a Viber
route, a registered alpha name), starts `tidings serve`, posts `--messages` Viber messages
with an SMS alternative in requests of 1,000 recipients (2 at a time), and waits until every
Viber message and every fallback SMS has a final status. Bounded in count and in time: it
stops waiting after `--max-seconds` and says what was left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench.server import Server, _cli, cli_env, make_database, seed
from tidings.db.engine import create_engine, create_sessionmaker
from tidings.messages.models import Message
from tidings.messages.status import FINAL_STATUSES

PRICES = "type,tariff,country,price,currency\nsms,0,UA,0.02,EUR\nviber,0,UA,0.01,EUR\n"
ALPHA_NAME = "Bench"
CHUNK = 1000
MSISDN_BASE = 380_970_000_000
FINAL = [status.value for status in FINAL_STATUSES]


def set_up_viber(database_url: str, workdir: Path, client_id: int) -> None:
    env = cli_env(database_url)
    prices = workdir / "viber-prices.csv"
    prices.write_text(PRICES, "utf-8")
    _cli(env, "prices", "import", str(prices))
    _cli(
        env,
        "suppliers",
        "create",
        "--name",
        "viber-sim",
        "--kind",
        "viber_simulator",
        "--option",
        "non_user_ratio=0.5",
        "--option",
        "read_ratio=0",
        "--json",
    )
    _cli(env, "routes", "create", "--type", "viber", "--supplier", "viber-sim")
    _cli(env, "clients", "viber-sender-add", str(client_id), ALPHA_NAME, "--json")


def bodies(count: int) -> list[bytes]:
    out = []
    for start in range(0, count, CHUNK):
        to = [{"msisdn": str(MSISDN_BASE + i)} for i in range(start, min(start + CHUNK, count))]
        request = {
            "messages": [
                {
                    "to": to,
                    "text": "Viber bench",
                    "alpha_name": ALPHA_NAME,
                    "options": {"sms": {"text": "SMS bench", "originator": "Bench"}},
                }
            ]
        }
        out.append(json.dumps(request).encode())
    return out


@dataclass(slots=True)
class Counts:
    viber_final: int = 0
    sms_total: int = 0
    sms_final: int = 0


async def counts(database_url: str) -> Counts:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(Message.channel, Message.status, func.count()).group_by(
                    Message.channel, Message.status
                )
            )
            found = Counts()
            for channel, status, count in rows.tuples():
                final = status in FINAL
                if channel == "viber" and final:
                    found.viber_final += count
                if channel == "sms":
                    found.sms_total += count
                    found.sms_final += count if final else 0
            return found
    finally:
        await engine.dispose()


async def run(base_url: str, key: str, database_url: str, count: int, max_seconds: float) -> None:
    requests = bodies(count)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in requests:
        queue.put_nowait(body)
    headers = {"X-API-KEY": key, "content-type": "application/json"}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=120, trust_env=False) as client:

        async def feeder() -> None:
            while not queue.empty():
                answer = await client.post(
                    "/rest/viber/create", content=queue.get_nowait(), headers=headers
                )
                if answer.status_code != 200:
                    raise RuntimeError(f"create answered {answer.status_code}: {answer.text}")

        await asyncio.gather(feeder(), feeder())
    accepted = time.perf_counter() - started
    deadline = started + max_seconds
    found = Counts()
    while time.perf_counter() < deadline:
        found = await counts(database_url)
        if found.viber_final == count and found.sms_final == found.sms_total:
            break
        await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - started
    done = found.viber_final == count and found.sms_final == found.sms_total
    print(f"  accepted {count} Viber messages in {accepted:.1f} s = {count / accepted:,.0f}/s")
    print(
        f"  {found.sms_total} fell back to SMS ({found.sms_total / count:.0%}); "
        f"{found.viber_final} Viber and {found.sms_final} SMS final after {elapsed:.1f} s"
    )
    if done:
        print(f"  end to end: {count / elapsed:,.0f} Viber messages/s (with their fallbacks)")
    else:
        print(f"  NOT DONE within {max_seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidings-viber-bench-") as tmp:
        workdir = Path(tmp)
        db = make_database(args.database, workdir)
        db.create()
        try:
            seeded = seed(db.url, workdir)
            set_up_viber(db.url, workdir, seeded.client_id)
            server = Server(db.url, workdir, mode="serve")
            server.start()
            try:
                server.wait_ready()
                print(f"Viber end to end on {args.database}, `tidings serve`, 50 % fallback")
                asyncio.run(
                    run(server.base_url, seeded.live_key, db.url, args.messages, args.max_seconds)
                )
            finally:
                server.stop()
        finally:
            db.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
