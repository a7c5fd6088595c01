"""Inbound messages on each database: numbers, matching, storing once, parts, the fan-out to
webhooks and the SMPP queue, and the two HTTP ends (`POST /api/mo`, `GET /rest/sms/inbound`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.integration.test_console import PASSWORD as CONSOLE_PASSWORD
from tests.integration.test_console import _sign_in
from tests.support import accept_messages, api_client, build_world, set_dlr_credentials
from tidings.accounts.models import Client
from tidings.accounts.service import issue_smpp_credentials
from tidings.clock import FrozenClock
from tidings.connectors.base import InboundMo, InboundPiece
from tidings.connectors.smpp.text import read_part
from tidings.db.engine import transaction
from tidings.delivery.worker import WorkerOptions
from tidings.errors import Conflict, InvalidRequest, NotFound
from tidings.exports.filters import parse_filter
from tidings.exports.repository import create_reader_engine, stream_messages
from tidings.exports.rows import RowRenderer
from tidings.inbound.models import InboundMessage, InboundPart
from tidings.inbound.repository import NumberRepository
from tidings.inbound.service import (
    INBOUND_EVENT,
    StoredInbound,
    assign_number,
    give_up_parts,
    receive,
    release_number,
)
from tidings.messages.models import Message
from tidings.numbering import CountryTable
from tidings.operators.service import create_operator
from tidings.routing.service import create_supplier
from tidings.smpp_server.receipts import deliver_pdu
from tidings.smpp_server.store import pending_receipts
from tidings.webhooks.models import WebhookDelivery

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _world(sessions: Sessions, clock: FrozenClock, mo_url: str | None = None) -> int:
    world = await build_world(sessions, clock, balance=Decimal(10))
    async with transaction(sessions) as session:
        client = await session.get(Client, world.client_id)
        assert client is not None
        client.mo_url = mo_url
    return world.supplier_id


async def _receive(
    sessions: Sessions, clock: FrozenClock, supplier_id: int, *items: InboundMo | InboundPiece
) -> list[StoredInbound | None]:
    async with transaction(sessions) as session:
        return await receive(session, clock, supplier_id, list(items))


def _mo(
    text: str,
    recipient: str = "4567",
    at: datetime = START,
    reference: str | None = None,
    fingerprint: str | None = None,
) -> InboundMo:
    return InboundMo("+380971234567", recipient, text, at, reference, fingerprint)


async def test_numbers_assign_list_release(sessions: Sessions, clock: FrozenClock) -> None:
    await _world(sessions, clock)
    async with transaction(sessions) as session:
        whole = await assign_number(session, clock, 1, "+380 50 123-45-67")
        keyword = await assign_number(session, clock, 1, "4567", keyword="pizza")
        assert (whole.number, whole.keyword) == ("380501234567", "")
        assert keyword.keyword == "PIZZA"
    async with transaction(sessions) as session:
        with pytest.raises(Conflict):
            await assign_number(session, clock, 1, "380501234567")
        with pytest.raises(InvalidRequest):
            await assign_number(session, clock, 1, "not a number!")
        with pytest.raises(InvalidRequest):
            await assign_number(session, clock, 1, "4567", keyword="two words")
    async with transaction(sessions) as session:
        assert len(await NumberRepository(session).list(1)) == 2
        await release_number(session, "4567", "Pizza")
        with pytest.raises(NotFound):
            await release_number(session, "4567", "PIZZA")
        assert [n.number for n in await NumberRepository(session).list()] == ["380501234567"]


async def test_matched_by_number_then_keyword_else_unrouted(
    sessions: Sessions, clock: FrozenClock
) -> None:
    supplier_id = await _world(sessions, clock)
    async with transaction(sessions) as session:
        other = Client(name="other", created_at=clock.now())
        session.add(other)
        await session.flush()
        await assign_number(session, clock, 1, "4567", keyword="PIZZA")
        await assign_number(session, clock, other.id, "4567")
        await assign_number(session, clock, 1, "999", supplier_id=supplier_id)
    stored = await _receive(
        sessions,
        clock,
        supplier_id,
        _mo("pizza, large please"),
        _mo("hello"),
        _mo("to nobody", recipient="+1 555 0100"),
        _mo("by the right supplier", recipient="999"),
    )
    assert [(s.client_id, s.keyword) for s in stored if s] == [
        (1, "PIZZA"),
        (other.id, None),
        (None, None),
        (1, None),
    ]
    # A number tied to one supplier does not take another's messages.
    async with transaction(sessions) as session:
        [elsewhere] = await receive(session, clock, None, [_mo("via http", recipient="999")])
    assert elsewhere is not None and elsewhere.client_id is None
    async with sessions() as session:
        rows = (await session.execute(select(InboundMessage).order_by(InboundMessage.id))).scalars()
        assert [(r.recipient, r.sender) for r in rows][2] == ("15550100", "380971234567")


async def test_stored_once_by_supplier_id_and_by_fingerprint(
    sessions: Sessions, clock: FrozenClock
) -> None:
    supplier_id = await _world(sessions, clock, mo_url="http://127.0.0.1:9/mo")
    async with transaction(sessions) as session:
        await assign_number(session, clock, 1, "4567")
    [first] = await _receive(sessions, clock, supplier_id, _mo("hi", reference="m-1"))
    [again] = await _receive(sessions, clock, supplier_id, _mo("hi", reference="m-1"))
    assert first is not None and again is not None
    assert (again.id, again.duplicate, first.duplicate) == (first.id, True, False)
    [pdu1] = await _receive(sessions, clock, supplier_id, _mo("x", fingerprint="pdu:abc"))
    clock.advance(60)
    resent = _mo("x", at=clock.now(), fingerprint="pdu:abc")
    [pdu2] = await _receive(sessions, clock, supplier_id, resent)
    clock.advance(3600)  # past the window: the same text again is a new message
    later = _mo("x", at=clock.now(), fingerprint="pdu:abc")
    [pdu3] = await _receive(sessions, clock, supplier_id, later)
    assert pdu1 and pdu2 and pdu3
    assert pdu2.duplicate and pdu2.id == pdu1.id
    assert not pdu3.duplicate and pdu3.id != pdu1.id
    async with sessions() as session:
        hooks = (await session.execute(select(WebhookDelivery))).scalars().all()
    # One webhook per new message, none for the repeats.
    assert len(hooks) == 3
    assert {h.event for h in hooks} == {INBOUND_EVENT}
    assert hooks[0].url == "http://127.0.0.1:9/mo"
    assert hooks[0].schedule == [60, 360, 3600, 43200, 86400]
    body = orjson.loads(hooks[0].body)
    assert (body["sender"], body["recipient"], body["text"]) == ("380971234567", "4567", "hi")


async def test_long_message_from_parts_and_smpp_queue(
    sessions: Sessions, clock: FrozenClock
) -> None:
    supplier_id = await _world(sessions, clock)
    async with transaction(sessions) as session:
        await assign_number(session, clock, 1, "4567")
        await issue_smpp_credentials(session, 1)

    def piece(seqnum: int, text: str) -> InboundPiece:
        udh = bytes([5, 0, 3, 42, 2, seqnum])
        part = read_part(udh + text.encode("utf-16-be"), 8, 0x40)
        return InboundPiece(
            "380971234567", "4567", "k", seqnum, 2, part.units, part.alphabet, clock.now()
        )

    second = await _receive(sessions, clock, supplier_id, piece(2, " світ"))
    assert second == [None]
    second_again = await _receive(sessions, clock, supplier_id, piece(2, " світ"))
    assert second_again == [None]
    [whole] = await _receive(sessions, clock, supplier_id, piece(1, "Привіт,"))
    assert whole is not None and whole.text == "Привіт, світ" and whole.parts == 2
    async with transaction(sessions) as session:
        assert (await session.execute(select(InboundPart))).first() is None
        [queued] = await pending_receipts(session, [1], [], 10)
    assert queued.inbound_id == whole.id
    pdu = deliver_pdu(queued)
    assert pdu.esm_class == 0 and pdu.source_addr == "380971234567"
    assert pdu.destination_addr == "4567" and pdu.data_coding == 8
    assert pdu.short_message.decode("utf-16-be") == "Привіт, світ"


async def test_api_mo_and_inbound_list(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock, balance=Decimal(10))
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    async with transaction(sessions) as session:
        await assign_number(session, clock, world.client_id, "4567")
    credentials = {"_login": "LOGIN", "_password": "PASSWORD"}
    async with api_client(database_url, clock) as api:
        body = {
            "sender": "+380971234567",
            "recipient": "4567",
            "text": "Yes",
            "received_at": "2026-03-01T11:59:00Z",
            "supplier_message_id": "up-1",
            **credentials,
        }
        first = await api.post("/api/mo", json=body)
        again = await api.post("/api/mo", json=body)
        assert first.status_code == again.status_code == 200
        assert first.headers["content-type"] == "application/vnd.api+json"
        assert first.json()["data"]["attributes"] == {"status": "ok", "duplicate": False}
        assert again.json()["data"]["id"] == first.json()["data"]["id"]
        assert again.json()["data"]["attributes"]["duplicate"] is True
        bad = await api.post("/api/mo", json={"text": "x", **credentials})
        assert bad.status_code == 400
        assert {e["source"]["parameter"] for e in bad.json()["errors"]} == {"sender", "recipient"}
        denied = await api.post("/api/mo", json={**body, "_password": "wrong"})
        assert denied.status_code == 401
        await api.post(
            "/api/mo",
            json={
                **body,
                "supplier_message_id": "up-2",
                "text": "No",
                "received_at": "2026-03-01 12:00:00",
            },
        )
        key = {"X-API-KEY": world.live_key}
        page = (await api.get("/rest/sms/inbound?limit=1", headers=key)).json()
        assert page["error"] == "0" and page["more"] is True
        [item] = page["inbound"]
        assert (item["sender"], item["recipient"], item["text"]) == ("380971234567", "4567", "Yes")
        assert item["time_in"] == "2026-03-01 11:59:00"
        rest = (await api.get(f"/rest/sms/inbound?since={page['next']}", headers=key)).json()
        assert [m["text"] for m in rest["inbound"]] == ["No"] and rest["more"] is False
        by_time = await api.get("/rest/sms/inbound?since=2026-03-01T12:00:00", headers=key)
        assert [m["text"] for m in by_time.json()["inbound"]] == ["No"]
        wrong = await api.get("/rest/sms/inbound?limit=0", headers=key)
        assert wrong.status_code == 400 and wrong.json()["error"] == "7"
        nokey = await api.get("/rest/sms/inbound")
        assert nokey.json()["error"] == "1"
        metrics = (await api.get("/metrics")).text
    # Two messages stored, the repeat not counted.
    sample = (
        f'tidings_inbound_messages_total{{client_id="{world.client_id}",number="4567",'
        f'supplier_id="{world.supplier_id}"}} 2.0'
    )
    assert sample in metrics


async def test_reply_goes_from_the_number_through_the_inbound_supplier(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock, balance=Decimal(10))  # routes go to sim-acme
    async with transaction(sessions) as session:
        hosting = await create_supplier(session, clock, name="host", kind="simulator")
        await assign_number(session, clock, world.client_id, "4567")
    [inbound] = await _receive(sessions, clock, hosting.id, _mo("Is it open?"))
    assert inbound is not None
    key = {"X-API-KEY": world.live_key}
    async with api_client(database_url, clock) as api:
        created = await api.post(
            "/rest/sms/create",
            headers=key,
            json={"destination": "phone", "reply_to": inbound.id, "body": "Yes", "reference": "r1"},
        )
        assert created.json()["error"] == "0", created.text
        unknown = await api.post(
            "/rest/sms/create",
            headers=key,
            json={
                "destination": "phone",
                "reply_to": inbound.id + 1,
                "body": "?",
                "reference": "r2",
            },
        )
        assert unknown.json()["error"] == "7"
    async with sessions() as session:
        message = await session.get(Message, int(created.json()["id"]))
    assert message is not None
    assert (message.msisdn, message.originator) == ("380971234567", "4567")
    assert (message.supplier_id, message.reply_to) == (hosting.id, inbound.id)


@pytest.mark.parametrize("message_type", [None, "sms"])
async def test_exports_hold_inbound_messages_with_their_direction(
    database_url: str, sessions: Sessions, clock: FrozenClock, message_type: str | None
) -> None:
    world = await build_world(sessions, clock, balance=Decimal(10))
    async with transaction(sessions) as session:
        await assign_number(session, clock, world.client_id, "4567")
    await accept_messages(sessions, clock, world, 1)
    clock.advance(1)  # rows are in time order (ids break ties, and the two kinds' ids differ)
    await _receive(sessions, clock, world.supplier_id, _mo("STOP", at=clock.now()))
    payload: dict[str, str] = {
        "time_in_from": "2026-03-01 00:00:00",
        "time_in_to": "2026-03-02 00:00:00",
    }
    if message_type is not None:
        payload["message_type"] = message_type
    spec = parse_filter(payload, CountryTable.load())
    reader = create_reader_engine(database_url)
    renderer = RowRenderer(CountryTable.load())
    try:
        async with reader.connect() as connection:
            rows = [
                renderer(record)
                async for batch in stream_messages(connection, world.client_id, spec, 100)
                for record in batch
            ]
    finally:
        await reader.dispose()
    assert [(r["direction"], r["message_type"]) for r in rows if r] == [
        ("outbound", "sms"),
        ("inbound", "sms"),
    ]
    assert rows[1] is not None and (rows[1]["originator"], rows[1]["body"]) == ("4567", "STOP")


async def test_console_lists_inbound_and_unrouted(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    supplier_id = await _world(sessions, clock)
    async with transaction(sessions) as session:
        await assign_number(session, clock, 1, "4567")
        await create_operator(session, clock, name="olga", password=CONSOLE_PASSWORD)
    await _receive(sessions, clock, supplier_id, _mo("for acme"), _mo("lost", recipient="999"))
    async with api_client(database_url, clock) as http:
        signed = await _sign_in(http, "olga", CONSOLE_PASSWORD)
        assert signed.status_code == 303
        every = await http.get("/console/inbound")
        unrouted = await http.get("/console/inbound?unrouted=1")
    assert every.status_code == unrouted.status_code == 200
    assert "for acme" in every.text and "lost" in every.text
    assert "lost" in unrouted.text and "for acme" not in unrouted.text
    assert "1 unrouted" in unrouted.text


async def test_a_long_message_missing_parts_is_stored_with_what_came(
    sessions: Sessions, clock: FrozenClock
) -> None:
    supplier_id = await _world(sessions, clock)
    async with transaction(sessions) as session:
        await assign_number(session, clock, 1, "4567")

    def piece(assembly: str, seqnum: int, text: str) -> InboundPiece:
        return InboundPiece(
            "380971234567", "4567", assembly, seqnum, 2, text.encode(), "ascii", clock.now()
        )

    assert await _receive(sessions, clock, supplier_id, piece("lost", 1, "Half of it")) == [None]
    # A whole message, then its second part again (the SMSC lost our answer to it).
    await _receive(
        sessions, clock, supplier_id, piece("whole", 1, "One "), piece("whole", 2, "two")
    )
    assert await _receive(sessions, clock, supplier_id, piece("whole", 2, "two")) == [None]
    async with transaction(sessions) as session:
        assert await give_up_parts(session, clock) == {}  # not overdue yet
    clock.advance(2 * 3600)
    async with transaction(sessions) as session:
        overdue = await give_up_parts(session, clock)
    [given_up] = overdue[supplier_id]
    assert (given_up.text, given_up.parts, given_up.client_id) == ("Half of it", 1, 1)
    async with sessions() as session:
        texts = (await session.execute(select(InboundMessage.text))).scalars().all()
        assert sorted(texts) == ["Half of it", "One two"]
        assert (await session.execute(select(InboundPart))).first() is None


async def test_the_simulator_answers_from_the_handset(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(
        sessions, clock, balance=Decimal(10), supplier_options={"mo_ratio": 1, "mo_text": "ok!"}
    )
    async with transaction(sessions) as session:
        await assign_number(session, clock, world.client_id, "4567")
    key = {"X-API-KEY": world.live_key}
    sms = {"destination": "phone", "msisdn": "380971234567", "reference": "q1",
           "originator": "4567", "body": "Are you coming?"}  # fmt: skip
    async with api_client(
        database_url, clock, with_workers=True, worker_options=WorkerOptions(poll_interval=0.01)
    ) as api:
        created = await api.post("/rest/sms/create", json=sms, headers=key)
        assert created.json()["error"] == "0", created.text
        for _ in range(500):
            inbound = (await api.get("/rest/sms/inbound", headers=key)).json()["inbound"]
            if inbound:
                break
            await asyncio.sleep(0.02)
    [answer] = inbound
    assert (answer["sender"], answer["recipient"], answer["text"]) == (
        "380971234567",
        "4567",
        "ok!",
    )


async def test_parts_stored_at_once_in_two_transactions_make_one_message(
    sessions: Sessions, clock: FrozenClock
) -> None:
    supplier_id = await _world(sessions, clock)

    def piece(seqnum: int, text: str) -> InboundPiece:
        return InboundPiece(
            "380971234567", "4567", "k", seqnum, 2, text.encode(), "ascii", clock.now()
        )

    first_stored = asyncio.Event()
    release = asyncio.Event()

    async def first() -> list[StoredInbound | None]:
        async with transaction(sessions) as session:
            answer = await receive(session, clock, supplier_id, [piece(1, "a ")])
            first_stored.set()
            await release.wait()  # still uncommitted while the second part comes
            return answer

    one = asyncio.create_task(first())
    await first_stored.wait()
    two = asyncio.create_task(_receive(sessions, clock, supplier_id, piece(2, "b")))
    await asyncio.sleep(0.2)
    release.set()
    answers = [*await one, *await two]
    assert [a.text for a in answers if a] == ["a b"]


async def test_hooks_run_on_new_messages_in_their_transaction(
    sessions: Sessions, clock: FrozenClock
) -> None:
    supplier_id = await _world(sessions, clock)
    async with transaction(sessions) as session:
        await assign_number(session, clock, 1, "4567")
    seen: list[tuple[int | None, str]] = []

    async def record(session: AsyncSession, _clock: object, new: Sequence[StoredInbound]) -> None:
        seen.extend((m.client_id, m.text) for m in new)

    async def refuse(session: AsyncSession, _clock: object, new: Sequence[StoredInbound]) -> None:
        raise RuntimeError("opt-out list unavailable")

    async def deliver(text: str, hooks: Sequence[Any]) -> None:
        async with transaction(sessions) as session:
            await receive(session, clock, supplier_id, [_mo(text, reference=text)], hooks=hooks)

    await deliver("STOP", [record])
    await deliver("STOP", [record])  # a repeat: no hook
    with pytest.raises(RuntimeError):
        await deliver("START", [refuse])
    assert seen == [(1, "STOP")]
    async with sessions() as session:
        texts = (await session.execute(select(InboundMessage.text))).scalars().all()
        hooks = (await session.execute(select(WebhookDelivery))).scalars().all()
    assert texts == ["STOP"] and hooks == []  # the refused one left nothing behind


async def test_statements_per_batch(
    engine: AsyncEngine, sessions: Sessions, clock: FrozenClock
) -> None:
    """A batch of MO costs one INSERT each (by supplier id) or a look-up and an INSERT (by
    fingerprint), and a fixed handful for the batch: matching, owners, webhook and SMPP rows."""
    supplier_id = await _world(sessions, clock, mo_url="http://127.0.0.1:9/mo")
    async with transaction(sessions) as session:
        await assign_number(session, clock, 1, "4567")
        await issue_smpp_credentials(session, 1)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for by_id in (True, False):
            batch = [
                _mo(
                    f"m{i}",
                    reference=f"r{i}" if by_id else None,
                    fingerprint=None if by_id else f"f{i}",
                )
                for i in range(50)
            ]
            statements.clear()
            async with transaction(sessions) as session:
                await receive(session, clock, supplier_id, batch)
            per_message = 1 if by_id else 2
            assert len(statements) <= 50 * per_message + 6, statements[:10]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
