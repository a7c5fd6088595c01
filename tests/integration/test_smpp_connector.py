"""The SMPP connector behind a real supplier lane, on each database.

Our own SMSC (``connectors/smpp/smsc.py``) injects the faults; smpp34's SMSC (a Rust
implementation, independent of ours) proves we speak the same SMPP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
import smpp34
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.e2e.gateway import free_port
from tests.support import World, accept_messages, build_world, history, history_statuses
from tidings.accounts.service import Caller, KeyKind
from tidings.clock import FrozenClock
from tidings.connectors.base import SupplierReport
from tidings.connectors.smpp.connector import SmppConnector
from tidings.connectors.smpp.pdu import CommandStatus
from tidings.connectors.smpp.receipts import canonical_id
from tidings.connectors.smpp.smsc import Smsc, SmscConfig
from tidings.db.engine import transaction
from tidings.delivery.models import DispatchJob, MessagePart, Receipt
from tidings.delivery.repository import PartRepository
from tidings.delivery.service import RetryPolicy, ingest_reports, match_late_receipts
from tidings.delivery.worker import DeliveryWorker, SupplierLane, WorkerOptions
from tidings.messages.acceptance import Limits, SmsItem, SmsRequest
from tidings.messages.changes import StatusChange
from tidings.messages.encoding import decode_gsm7
from tidings.messages.models import Message
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.messages.storing import accept_sms
from tidings.routing.models import Supplier

FAST = {
    "reconnect_delay": 0.05,
    "reconnect_max": 0.2,
    "bind_wait": 2,
    "submit_deadline": 5,
    "response_timeout": 2,
    "throttle_pause": 0.02,
}


def smpp_options(smsc_port: int, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": smsc_port,
        "system_id": "tidings",
        "password": "secret",
        **FAST,
        **extra,
    }


@contextlib.asynccontextmanager
async def smpp_lane(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    world: World,
    options: dict[str, Any],
    sink: Callable[[int, Sequence[SupplierReport]], Awaitable[None]] | None = None,
    **worker: Any,
) -> AsyncIterator[tuple[SupplierLane, SmppConnector]]:
    connector = SmppConnector(world.supplier_id, options, clock)
    worker_options = WorkerOptions(
        poll_interval=0.01, retry=RetryPolicy(max_attempts=50, base_delay=1, max_delay=2), **worker
    )
    reports = DeliveryWorker(sessions, clock, worker_options).report
    await connector.start(sink or reports)
    async with sessions() as session:
        supplier = await session.get(Supplier, world.supplier_id)
    assert supplier is not None
    lane = SupplierLane(supplier, connector, sessions, clock, worker_options)
    try:
        yield lane, connector
    finally:
        await lane.stop()


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> Counter[str]:
    async with sessions() as session:
        rows = await session.execute(select(Message.status, func.count()).group_by(Message.status))
    return Counter({status: count for status, count in rows.tuples()})


async def drive(
    lane: SupplierLane,
    clock: FrozenClock,
    sessions: async_sessionmaker[AsyncSession],
    total: int,
    final: str = "delivered",
    seconds: float = 30,
    during: Callable[[], Awaitable[None]] | None = None,
) -> Counter[str]:
    """Run the lane (its own loop) and move the clock until `total` messages are `final`."""
    lane.start()
    # The sweeper matches a receipt whose transaction raced the submit answer's.
    sweeper = DeliveryWorker(sessions, clock, WorkerOptions())
    deadline = time.monotonic() + seconds
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        if during is not None:
            await during()
        await sweeper.sweep()
        counts = await statuses(sessions)
        if counts[final] >= total:
            break
        clock.advance(1)  # retries back off on this clock
        await asyncio.sleep(0.02)
    return counts


async def events_per_message(sessions: async_sessionmaker[AsyncSession]) -> Counter[str]:
    """How often each (message, status) event was recorded, as "status:count" tallies."""
    async with sessions() as session:
        rows = Counter(await history(session))
    return Counter(f"{status}:{count}" for (_, status), count in rows.items())


async def test_messages_go_out_and_receipts_match_despite_id_forms(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    # Upper-case, zero-padded hex in submit_sm_resp; decimal in the receipts.
    async with Smsc(SmscConfig(id_style="HEX0", receipt_id_style="dec")) as smsc:
        world = await build_world(sessions, clock)
        ids = await accept_messages(sessions, clock, world, 40)
        options = smpp_options(smsc.port, receipt_id_format="hex_to_dec", binds=2)
        async with smpp_lane(sessions, clock, world, options) as (lane, _):
            counts = await drive(lane, clock, sessions, 40)
        assert counts == Counter(delivered=40)
        async with sessions() as session:
            stored = {m.id: m.supplier_message_id for m in await session.scalars(select(Message))}
        assert set(stored) == set(ids)
        assert sorted(map(str, stored.values())) == sorted(
            canonical_id(s.message_id) for s in smsc.submitted
        )
        assert smsc.submitted[0].message_id.startswith("0000")  # the SMSC's own form differs
        assert smsc.receipts_acked == 40
        assert smsc.unbinds == 2  # a clean unbind per bind on stop


async def test_long_message_parts_and_receipts(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with Smsc(SmscConfig(receipt_delay=0.05)) as smsc:
        world = await build_world(sessions, clock)
        [mid] = await accept_messages(sessions, clock, world, 1, body="long text " * 40)
        async with smpp_lane(sessions, clock, world, smpp_options(smsc.port)) as (lane, _):
            counts = await drive(lane, clock, sessions, 1)
        assert counts == Counter(delivered=1)
        parts = smsc.submitted
        assert [p.concat.seqnum for p in parts if p.concat] == [1, 2, 3]
        assert "".join(p.text.text for p in parts) == "long text " * 40
        async with sessions() as session:
            message = await session.get(Message, mid)
            receipts = (await session.scalars(select(Receipt).order_by(Receipt.id))).all()
            events = await history_statuses(session)
        assert message is not None and message.parts == 3
        assert message.supplier_message_id == canonical_id(parts[0].message_id)
        # Every part's receipt is stored under its own id against the message; the message
        # is delivered once, when the last of the three is.
        part_ids = [canonical_id(p.message_id) for p in parts]
        assert sorted(r.supplier_message_id for r in receipts) == sorted(part_ids)
        assert [r.message_id for r in receipts] == [mid, mid, mid]
        assert [r.status for r in receipts] == ["delivered"] * 3
        assert events == ["sent", "delivered"]
        assert message.status_detail is not None and message.status_detail.startswith("all 3 parts")
        async with sessions() as session:
            rows = (await session.execute(select(MessagePart.part_id, MessagePart.status))).all()
        assert sorted(rows) == sorted((i, "delivered") for i in part_ids)


async def test_part_receipts_settle_long_messages_after_a_restart(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """The part ids are rows: receipts that come after a restart (a new process, no memory)
    settle the message by any part: delivered when all are, undelivered when one fails."""
    async with Smsc(SmscConfig(receipts=False)) as smsc:
        world = await build_world(sessions, clock)
        first, second = await accept_messages(sessions, clock, world, 2, body="part " * 80)
        async with smpp_lane(sessions, clock, world, smpp_options(smsc.port)) as (lane, _):
            assert (await drive(lane, clock, sessions, 2, final="sent"))["sent"] == 2
        ids = [canonical_id(p.message_id) for p in smsc.submitted]
    assert len(ids) == 6
    async with sessions() as session:
        rows = (
            await session.execute(
                select(MessagePart.message_id, MessagePart.part_id).order_by(
                    MessagePart.message_id, MessagePart.seqnum
                )
            )
        ).tuples()
        by_message: dict[int, list[str]] = {}
        for message_id, part_id in rows:
            by_message.setdefault(message_id, []).append(part_id)
        smids = dict(
            (await session.execute(select(Message.id, Message.supplier_message_id))).tuples().all()
        )
    assert sorted(i for parts in by_message.values() for i in parts) == sorted(ids)
    assert smids == {mid: parts[0] for mid, parts in by_message.items()}
    parts_of_first, parts_of_second = by_message[first], by_message[second]

    async def report(part_id: str, status: Status) -> None:
        worker = DeliveryWorker(sessions, clock, WorkerOptions())  # a new process each time
        await worker.report(world.supplier_id, [SupplierReport(part_id, status, clock.now())])

    async def state(mid: int) -> tuple[str, str | None]:
        async with sessions() as session:
            message = await session.get(Message, mid)
        assert message is not None
        return message.status, message.status_detail

    await report(parts_of_first[2], Status.DELIVERED)
    await report(parts_of_first[1], Status.DELIVERED)
    assert await state(first) == ("sent", None)  # 2 of 3 delivered: not yet
    await report(parts_of_first[1], Status.DELIVERED)  # a duplicate counts once
    assert (await state(first))[0] == "sent"
    await report(parts_of_first[0], Status.DELIVERED)
    status, detail = await state(first)
    assert status == "delivered" and detail is not None and detail.startswith("all 3 parts")

    await report(parts_of_second[1], Status.UNDELIVERED)  # one part failing settles it
    status, detail = await state(second)
    assert status == "undelivered" and detail is not None and detail.startswith("part 2/3")
    await report(parts_of_second[0], Status.DELIVERED)
    assert (await state(second))[0] == "undelivered"
    assert await events_per_message(sessions) == Counter(
        {"sent:1": 2, "delivered:1": 1, "undelivered:1": 1}
    )


async def test_smsc_killed_mid_run_everything_delivered_once(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    smsc = Smsc(SmscConfig(receipt_delay=0.02))
    await smsc.start()
    total = 400
    world = await build_world(sessions, clock, balance=Decimal(100))
    await accept_messages(sessions, clock, world, total)
    state = {"crashed": False, "restarted": False}

    async def chaos() -> None:
        if not state["crashed"] and len(smsc.submitted) >= 120:
            state["crashed"] = True
            await smsc.crash()  # every bind cut mid-window, receipts not yet sent kept
            await asyncio.sleep(0.3)
            await smsc.start()
            state["restarted"] = True

    options = smpp_options(smsc.port, binds=2, window=20)
    try:
        async with smpp_lane(sessions, clock, world, options, batch_size=50) as (lane, connector):
            counts = await drive(lane, clock, sessions, total, seconds=60, during=chaos)
            binds = sum(s.binds for s in connector.sessions)
    finally:
        await smsc.crash()
    assert state["restarted"] and binds >= 4
    assert counts == Counter(delivered=total)
    # Nothing recorded twice: one "sent" and one "delivered" event per message.
    assert await events_per_message(sessions) == Counter({"sent:1": total, "delivered:1": total})
    destinations = Counter(s.destination_addr for s in smsc.submitted)
    assert len(destinations) == total
    # Only a submit the SMSC took but whose answer the crash cut can reach it twice.
    assert sum(destinations.values()) - total <= 40


async def test_throttling_slows_down_and_retries(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with Smsc(SmscConfig(throttle_every=5, throttle_first=3)) as smsc:
        world = await build_world(sessions, clock)
        await accept_messages(sessions, clock, world, 60)
        async with smpp_lane(sessions, clock, world, smpp_options(smsc.port, window=5)) as (
            lane,
            connector,
        ):
            counts = await drive(lane, clock, sessions, 60)
            throttled = connector.stats["throttled"]
            links = connector.bound_links
        assert counts == Counter(delivered=60)
        assert smsc.throttled >= 12 and throttled == smsc.throttled
        assert links and links[0].throttled == throttled
        assert len(smsc.submitted) == 60  # throttled submits were not taken, so none twice


async def test_throttled_past_the_deadline_goes_back_to_the_queue(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with Smsc(SmscConfig(throttle_first=1000)) as smsc:
        world = await build_world(sessions, clock)
        [mid] = await accept_messages(sessions, clock, world, 1)
        options = smpp_options(smsc.port, submit_deadline=0.3, throttle_pause=0.05)
        async with smpp_lane(sessions, clock, world, options) as (lane, _):
            assert await lane.step()
        async with sessions() as session:
            message = await session.get(Message, mid)
            job_error = await session.scalar(select(DispatchJob.last_error))
        assert message is not None and message.status == "queued"
        assert job_error is not None and "ESME_RTHROTTLED" in job_error


async def test_errors_reject_with_the_smpp_name(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    bad = "380971000001"
    async with Smsc(SmscConfig(reject={bad: CommandStatus.ESME_RINVDSTADR})) as smsc:
        world = await build_world(sessions, clock)
        await accept_messages(sessions, clock, world, 3)
        async with smpp_lane(sessions, clock, world, smpp_options(smsc.port)) as (lane, _):
            counts = await drive(lane, clock, sessions, 2)
            # The two taken are recorded (and delivered) as their answers come; the refusal
            # with the rest of the batch, a moment later.
            for _ in range(100):
                if counts["rejected"]:
                    break
                await asyncio.sleep(0.05)
                counts = await statuses(sessions)
        assert counts == Counter(delivered=2, rejected=1)
        async with sessions() as session:
            rejected = await session.scalar(select(Message).where(Message.msisdn == bad))
        assert rejected is not None and rejected.status_detail == (
            "SMPP ESME_RINVDSTADR (0x0000000B)"
        )


async def test_receipt_before_the_submit_answer(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with Smsc(SmscConfig(receipt_before_resp=True)) as smsc:
        world = await build_world(sessions, clock)
        await accept_messages(sessions, clock, world, 5)
        async with smpp_lane(sessions, clock, world, smpp_options(smsc.port)) as (lane, _):
            counts = await drive(lane, clock, sessions, 5)
        assert counts == Counter(delivered=5)


async def test_receipt_not_stored_is_not_acknowledged(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """A sink that fails: the deliver_sm gets an error, the SMSC sends it again."""
    async with Smsc(SmscConfig(redeliver_delay=0.05)) as smsc:
        world = await build_world(sessions, clock)
        await accept_messages(sessions, clock, world, 10)
        store = DeliveryWorker(sessions, clock, WorkerOptions()).report
        calls = {"n": 0}

        async def flaky(supplier_id: int, reports: Sequence[SupplierReport]) -> None:
            calls["n"] += 1
            if calls["n"] <= 2:
                raise ConnectionError("database away")
            await store(supplier_id, reports)

        async with smpp_lane(sessions, clock, world, smpp_options(smsc.port), flaky) as (lane, _):
            counts = await drive(lane, clock, sessions, 10)
        assert counts == Counter(delivered=10)
        assert smsc.receipts_sent > 10 and smsc.receipts_acked == 10


async def test_wrong_password_is_a_retry_with_the_reason(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with Smsc() as smsc:
        world = await build_world(sessions, clock)
        [mid] = await accept_messages(sessions, clock, world, 1)
        options = smpp_options(smsc.port, password="wrong", bind_wait=0.3)
        async with smpp_lane(sessions, clock, world, options) as (lane, connector):
            assert await lane.step()
            assert not connector.bound_links
        async with sessions() as session:
            message = await session.get(Message, mid)
        assert message is not None and message.status == "queued"
        assert smsc.bind_refusals >= 1 and not smsc.submitted


# --- interoperability with an independent SMSC: smpp34's (Rust) server ----------------


class ThirdPartySmsc:
    """smpp34.Server answering submit_sm with hex ids and sending text receipts in decimal."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server = smpp34.Server(host="127.0.0.1", port=port, system_id="RustSMSC")
        self.esmes: dict[str, smpp34.Esme] = {}
        self.submits: list[smpp34.SubmitSmEvent] = []
        self.receipt_status: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._ids = 0x0ABC0000

    async def start(self) -> ThirdPartySmsc:
        await self.server.start()
        self._loop = asyncio.get_running_loop().create_task(self._serve())
        return self

    async def stop(self) -> None:
        for task in [self._loop, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._loop, *self._tasks] if t], return_exceptions=True)
        await self.server.stop()

    async def _serve(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.esmes[event.session_id] = event
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._ids += 1
                self.submits.append(event)
                event.accept(message_id=f"{self._ids:X}")
                task = asyncio.get_running_loop().create_task(self._receipt(event, self._ids))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _receipt(self, event: smpp34.SubmitSmEvent, number: int) -> None:
        await asyncio.sleep(0.01)
        text = (
            f"id:{number} sub:001 dlvrd:001 submit date:2603011200 done date:2603011201 "
            "stat:DELIVRD err:000 text:"
        )
        answer = await self.esmes[event.session_id].deliver_sm(
            event.source_addr,
            text.encode(),
            source_addr=event.destination_addr,
            esm_class=0x04,
        )
        self.receipt_status.append(answer.command_status)


async def test_interoperates_with_smpp34_smsc(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    third = await ThirdPartySmsc(free_port()).start()
    try:
        world = await build_world(sessions, clock)
        bodies = ["plain GSM {text} €", "Привіт, світ 👋", "x" * 300, "ü" * 80]
        items = [SmsItem(f"38097100010{i}", f"r{i}", "Tidings", b) for i, b in enumerate(bodies)]
        caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
        async with transaction(sessions) as session:
            await accept_sms(session, clock, caller, SmsRequest("phones", items), Limits())
        options = smpp_options(third.port, receipt_id_format="hex_to_dec")
        async with smpp_lane(sessions, clock, world, options) as (lane, _):
            counts = await drive(lane, clock, sessions, 4)
        assert counts == Counter(delivered=4)
        assert set(third.receipt_status) == {0}
        by_coding = Counter((s.data_coding, s.esm_class) for s in third.submits)
        # GSM single, UCS-2 single, GSM 2 parts (UDH), UCS-2 ("ü"*80 is GSM: 1 part).
        assert by_coding == Counter({(0, 0): 2, (8, 0): 1, (0, 0x40): 2})
        udh_parts = [s.short_message for s in third.submits if s.esm_class == 0x40]
        assert [p[:3] for p in udh_parts] == [b"\x05\x00\x03", b"\x05\x00\x03"]
    finally:
        await third.stop()


async def test_part_receipts_that_raced_the_answer_are_matched_late(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """PostgreSQL, READ COMMITTED: a part's receipt stored while the answer was being recorded
    is seen by neither transaction; the sweeper's late matching settles it by its part."""
    world = await build_world(sessions, clock)
    [mid] = await accept_messages(sessions, clock, world, 1, body="part " * 80)
    async with transaction(sessions) as session:
        reports = [SupplierReport(i, Status.DELIVERED, clock.now()) for i in ("p2", "p1", "p3")]
        result = await ingest_reports(session, clock, world.supplier_id, reports)
    assert result.matched == [False, False, False]
    async with transaction(sessions) as session:  # the answer, not seeing those receipts
        await apply_changes(
            session,
            clock,
            [StatusChange(mid, Status.SENT, clock.now(), supplier_message_id="p1", sent=True)],
        )
        await PartRepository(session).add(world.supplier_id, [(mid, ["p1", "p2", "p3"])])
    async with transaction(sessions) as session:
        applied = await match_late_receipts(session, clock)
    assert [a.change.status for a in applied] == [Status.DELIVERED]
    async with sessions() as session:
        message = await session.get(Message, mid)
        unmatched = await session.scalar(
            select(func.count()).select_from(Receipt).where(Receipt.message_id.is_(None))
        )
    assert message is not None and message.status == "delivered" and unmatched == 0
    assert message.status_detail is not None and message.status_detail.startswith("all 3 parts")


async def test_parts_settled_by_concurrent_transactions(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """Two report writers (processes) storing different parts of one message at once: the
    second waits for the first's lock and sees its part, so the message is delivered."""
    world = await build_world(sessions, clock)
    mids = await accept_messages(sessions, clock, world, 5, body="part " * 60)
    async with transaction(sessions) as session:
        await apply_changes(
            session,
            clock,
            [
                StatusChange(m, Status.SENT, clock.now(), supplier_message_id=f"{m}a", sent=True)
                for m in mids
            ],
        )
        await PartRepository(session).add(
            world.supplier_id, [(m, [f"{m}a", f"{m}b"]) for m in mids]
        )

    async def report(part_id: str) -> None:
        async with transaction(sessions) as session:
            report = SupplierReport(part_id, Status.DELIVERED, clock.now())
            await ingest_reports(session, clock, world.supplier_id, [report])

    await asyncio.gather(*(report(f"{m}{half}") for m in mids for half in "ab"))
    assert await statuses(sessions) == Counter(delivered=5)


async def test_a_slow_answer_does_not_hold_back_the_others_sent(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """`sent` is written as each submit_sm_resp arrives (grouped), not when the batch ends:
    one answer the SMSC keeps for 1.5 s (its response_timeout is 2 s) leaves the other nine
    `sent` long before."""
    slow_phone = "380971000004"
    async with Smsc(SmscConfig(receipts=False, answer_delay={slow_phone: 1.5})) as smsc:
        world = await build_world(sessions, clock)
        ids = await accept_messages(sessions, clock, world, 10)
        async with smpp_lane(sessions, clock, world, smpp_options(smsc.port)) as (lane, _):
            started = time.monotonic()
            step = asyncio.get_running_loop().create_task(lane.step())
            counts: Counter[str] = Counter()
            while time.monotonic() - started < 1.4 and counts["sent"] < 9:
                await asyncio.sleep(0.05)
                counts = await statuses(sessions)
            others_sent_after = time.monotonic() - started
            assert counts["sent"] == 9 and not step.done()
            assert others_sent_after < 1.4
            async with sessions() as session:
                slow = (
                    await session.scalars(select(Message).where(Message.msisdn == slow_phone))
                ).one()
            assert slow.status != "sent"  # its answer is still out
            assert await step is True
            assert time.monotonic() - started >= 1.5
        assert await statuses(sessions) == Counter(sent=10)
        assert await events_per_message(sessions) == Counter({"sent:1": 10})
        assert len(ids) == len(smsc.submitted) == 10


@pytest.mark.parametrize("long_mode", ["udh", "udh16", "sar"])
async def test_long_messages_to_smpp34_smsc_cut_inside_pairs_read_back_whole(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, long_mode: str
) -> None:
    """Long messages through a third-party SMSC, by each concatenation method: an emoji
    and GSM-7 escapes sit where the parts are cut; the parts smpp34 parsed join back to
    the texts (the connector never splits a pair), and every message is delivered."""
    third = await ThirdPartySmsc(free_port()).start()
    try:
        world = await build_world(sessions, clock)
        bodies = ["a" * 66 + "😀" + "b" * 70, "x" * 152 + "{€}" + "y" * 160]
        items = [SmsItem(f"38097100020{i}", f"r{i}", "Tidings", b) for i, b in enumerate(bodies)]
        caller = Caller(client_id=world.client_id, key_kind=KeyKind.LIVE, tariff=0)
        async with transaction(sessions) as session:
            await accept_sms(session, clock, caller, SmsRequest("phones", items), Limits())
        options = smpp_options(third.port, receipt_id_format="hex_to_dec", long_messages=long_mode)
        async with smpp_lane(sessions, clock, world, options) as (lane, _):
            counts = await drive(lane, clock, sessions, 2)
        assert counts == Counter(delivered=2)
        by_phone: dict[str, list[smpp34.SubmitSmEvent]] = {}
        for submit in third.submits:
            by_phone.setdefault(submit.destination_addr, []).append(submit)
        texts = {}
        for phone, parts in by_phone.items():
            assert len(parts) >= 2
            pieces = []
            for part in parts:
                data = bytes(part.short_message)
                if long_mode == "sar":
                    assert part.esm_class == 0
                    tags = {_tag(tlv) for tlv in part.tlvs}
                    assert {0x020C, 0x020E, 0x020F} <= tags, part.tlvs
                else:
                    iei = 0x08 if long_mode == "udh16" else 0x00
                    assert part.esm_class == 0x40 and data[1] == iei
                    data = data[1 + data[0] :]  # drop the UDH
                pieces.append((part.data_coding, data))
            coding = pieces[0][0]
            joined = b"".join(data for _, data in pieces)
            texts[phone] = joined.decode("utf-16-be") if coding == 8 else decode_gsm7(joined)
        assert sorted(texts.values()) == sorted(bodies)
    finally:
        await third.stop()


def _tag(tlv: object) -> int:
    """smpp34 gives a TLV as a (tag, value) pair or an object with ``tag``."""
    if isinstance(tlv, tuple):
        return int(tlv[0])
    return int(getattr(tlv, "tag"))  # noqa: B009
