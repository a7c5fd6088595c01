"""Statistics exports over HTTP, built by the export worker, on SQLite and on PostgreSQL.

Covers every filter of `POST /rest/stat/create` alone and combined, each error code 80-93
with its HTTP status, the three formats parsed back and compared, the 5-export limit,
listing and deleting, expiry with the frozen clock, the export-ready callback, and a build
that dies (its lease runs out and another worker builds it from scratch).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import Receiver, World, api_client, build_world
from tidings.accounts.models import Client
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.exports.filters import ExportFilter
from tidings.exports.models import Export
from tidings.exports.repository import ExportRepository, create_reader_engine
from tidings.exports.rows import SMS_FIELDS
from tidings.exports.service import LeaseLost, build_files, one_month_after
from tidings.exports.storage import LocalStorage
from tidings.exports.worker import ExportOptions, ExportWorker
from tidings.messages.repository import MessageRepository
from tidings.messages.status import FINAL_STATUSES, PENDING_STATUSES, Status
from tidings.numbering import CountryTable, parse_msisdn
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.schedules import KETCHUP
from tidings.webhooks.worker import WebhookOptions, WebhookWorker

Sessions = async_sessionmaker[AsyncSession]

CREATE = "/rest/stat/create"
LIST = "/rest/stat/list"
BASE = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)
WINDOW = {"time_in_from": "2026-02-01 00:00:00", "time_in_to": "2026-02-28 23:59:59"}

# (msisdn, originator, source) of each seeded message; statuses cycle through all ten.
NUMBERS = [
    "380671234567",  # Kyivstar
    "380501234567",  # Vodafone
    "46701234567",  # Sweden
    "380671111111",
    "380931234567",  # lifecell
    "46731234567",
]
BODIES = [
    "plain text",
    "quotes \" and ' and <tags> & ampersands",
    "line one\nline two",
    "windows\r\nline end",
    "Привіт, світ! Ümlauts, 中文, emoji 🎉",
    "commas, semicolons; tabs\there",
]
STATUS_CYCLE = [
    Status.DELIVERED,
    Status.UNDELIVERED,
    Status.SENT,
    Status.QUEUED,
    Status.ACCEPTED,
    Status.SCHEDULED,
    Status.EXPIRED,
    Status.REJECTED,
    Status.FAILED,
    Status.UNKNOWN,
]


@dataclass(frozen=True)
class Seeded:
    id: int
    msisdn: str
    country: str
    brand: str
    originator: str
    source: str
    status: str
    body: str
    price: Decimal
    time_in: datetime
    time_sent: datetime | None
    time_dr: datetime | None


def message_row(client_id: int, index: int) -> dict[str, Any]:
    msisdn = NUMBERS[index % len(NUMBERS)]
    status = STATUS_CYCLE[index % len(STATUS_CYCLE)]
    time_in = BASE + timedelta(hours=index, microseconds=index * 1000 + 250)
    sent = status not in PENDING_STATUSES and status not in (Status.REJECTED, Status.FAILED)
    time_sent = time_in + timedelta(seconds=2) if sent else None
    return {
        "client_id": client_id,
        "task_id": None,
        "channel": "sms",
        "source": "smpp" if index % 4 == 3 else "api",
        "msisdn": msisdn,
        "country": parse_msisdn(msisdn).iso,
        "reference": f"r{client_id}x{index}",
        "originator": "alpha" if index % 3 else "beta",
        "body": BODIES[index % len(BODIES)],
        "encoding": "ucs2",
        "parts": 1,
        "tariff": 0,
        "price": Decimal("0.02") + Decimal(index) / 1000,
        "currency": "EUR",
        "status": status.value,
        "status_detail": None,
        "callback_url": None,
        "supplier_id": None,
        "send_at": None,
        "expires_at": time_in + timedelta(days=3),
        "time_in": time_in,
        "time_sent": time_sent,
        "time_dr": time_in + timedelta(seconds=30) if status in FINAL_STATUSES else None,
    }


async def seed_messages(sessions: Sessions, client_id: int, count: int) -> list[Seeded]:
    rows = [message_row(client_id, index) for index in range(count)]
    async with transaction(sessions) as session:
        ids = await MessageRepository(session).insert_many(rows)
    return [
        Seeded(
            id=id_,
            msisdn=row["msisdn"],
            country=row["country"],
            brand=parse_msisdn(row["msisdn"]).carrier or "",
            originator=row["originator"],
            source=row["source"],
            status=row["status"],
            body=row["body"],
            price=row["price"],
            time_in=row["time_in"],
            time_sent=row["time_sent"],
            time_dr=row["time_dr"],
        )
        for id_, row in zip(ids, rows, strict=True)
    ]


# --- Fixtures ---------------------------------------------------------------------------------


@dataclass
class Env:
    http: httpx.AsyncClient
    world: World
    messages: list[Seeded]
    worker: ExportWorker
    make_worker: Callable[..., ExportWorker]
    directory: Path
    sessions: Sessions
    clock: FrozenClock

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.world.live_key}

    async def create(self, payload: Any, *, key: str | None = None) -> httpx.Response:
        return await self.http.post(
            CREATE, headers={"X-API-KEY": key or self.world.live_key}, json=payload
        )

    async def created(self, payload: Any) -> str:
        answer = await self.create(payload)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["error"] == 0, body
        assert set(body) == {"error", "key"}
        return str(body["key"])

    async def file(self, key: str, fmt: str = "json", prefix: str = "/rest") -> httpx.Response:
        return await self.http.get(
            f"{prefix}/stat/file/id/{key}/format/{fmt}", headers=self.headers
        )

    async def rows(self, key: str) -> list[dict[str, Any]]:
        answer = await self.file(key)
        assert answer.status_code == 200, answer.text
        body = orjson.loads(answer.content)
        assert body["error"] == 0
        rows: list[dict[str, Any]] = body["message_data"]
        return rows

    async def build(self) -> None:
        assert await self.worker.run_once()

    async def delete(self, key: str) -> httpx.Response:
        return await self.http.delete(f"/rest/message/list/{key}", headers=self.headers)

    async def listing(self) -> list[dict[str, Any]]:
        answer = await self.http.get(LIST, headers=self.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["error"] == 0
        files: list[dict[str, Any]] = body["files"]
        return files


@pytest.fixture
async def env(
    database_url: str, sessions: Sessions, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[Env]:
    world = await build_world(sessions, clock)
    other = await build_world(sessions, clock, name="other")
    messages = await seed_messages(sessions, world.client_id, 30)
    await seed_messages(sessions, other.client_id, 5)  # must never show up
    directory = tmp_path / "exports"
    readers = []

    def make_worker(**options: Any) -> ExportWorker:
        reader = create_reader_engine(database_url)
        readers.append(reader)
        return ExportWorker(
            sessions,
            reader,
            LocalStorage(directory),
            clock,
            CountryTable.load(),
            ExportOptions(**{"batch_size": 7, **options}),
        )

    async with api_client(database_url, clock, settings={"export_dir": str(directory)}) as http:
        yield Env(http, world, messages, make_worker(), make_worker, directory, sessions, clock)
    for reader in readers:
        await reader.dispose()


def error_of(answer: httpx.Response) -> int:
    body = answer.json()
    assert set(body) == {"error", "errorDescription"}, body
    assert isinstance(body["error"], str)
    return int(body["error"])


# --- Filters ----------------------------------------------------------------------------------


def _in(low: str, high: str) -> Callable[[datetime | None], bool]:
    start = datetime.fromisoformat(low).replace(tzinfo=UTC)
    end = datetime.fromisoformat(high).replace(tzinfo=UTC) + timedelta(seconds=1)
    return lambda moment: moment is not None and start <= moment < end


IN_WINDOW = _in(WINDOW["time_in_from"], WINDOW["time_in_to"])
THIRD = BASE + timedelta(hours=3)
SENT_WINDOW = ("2026-02-10 10:00:00", "2026-02-10 20:00:00")
IN_SENT = _in(*SENT_WINDOW)

# (name, payload, which seeded messages it selects)
FILTER_CASES: list[tuple[str, dict[str, Any], Callable[[Seeded], bool]]] = [
    ("window", {**WINDOW}, lambda m: True),
    (
        "one second, as the seed's example (from == to)",
        {
            "time_in_from": THIRD.strftime("%Y-%m-%d %H:%M:%S"),
            "time_in_to": THIRD.strftime("%Y-%m-%d %H:%M:%S"),
        },
        lambda m: m.time_in.replace(microsecond=0) == THIRD,
    ),
    (
        "ISO times with offsets",
        {"time_in_from": "2026-02-10T10:00:00+02:00", "time_in_to": "2026-02-10T12:00:00Z"},
        lambda m: _in("2026-02-10 08:00:00", "2026-02-10 12:00:00")(m.time_in),
    ),
    (
        "a date alone is the whole day",
        {"time_in_from": "2026-02-11", "time_in_to": "2026-02-11"},
        lambda m: m.time_in.date() == datetime(2026, 2, 11).date(),
    ),
    (
        "msisdn",
        {**WINDOW, "msisdn": ["+380671234567", "46731234567"]},
        lambda m: m.msisdn in ("380671234567", "46731234567"),
    ),
    ("empty msisdn array is ignored", {**WINDOW, "msisdn": []}, lambda m: True),
    (
        "msisdn that is not an array is ignored",
        {**WINDOW, "msisdn": "380671234567"},
        lambda m: True,
    ),
    ("originator", {**WINDOW, "originator": "beta"}, lambda m: m.originator == "beta"),
    ("source_type", {**WINDOW, "source_type": "smpp"}, lambda m: m.source == "smpp"),
    ("source_type with no messages", {**WINDOW, "source_type": "web"}, lambda m: False),
    ("message_type sms", {**WINDOW, "message_type": "SMS"}, lambda m: True),
    # HLR and Viber rows: tests/integration/test_hlr_exports.py, test_exports_viber.py.
    ("message_type hlr (no lookup here)", {**WINDOW, "message_type": "hlr"}, lambda m: False),
    ("message_type viber (no Viber here)", {**WINDOW, "message_type": "viber"}, lambda m: False),
    (
        "time_sent window",
        {**WINDOW, "time_sent_from": SENT_WINDOW[0], "time_sent_to": SENT_WINDOW[1]},
        lambda m: IN_SENT(m.time_sent),
    ),
    (
        "time_sent from only",
        {**WINDOW, "time_sent_from": SENT_WINDOW[1]},
        lambda m: m.time_sent is not None and m.time_sent >= datetime(2026, 2, 10, 20, tzinfo=UTC),
    ),
    ("country_name", {**WINDOW, "country_name": "Sweden"}, lambda m: m.country == "SE"),
    ("country_name, any case", {**WINDOW, "country_name": "ukraine"}, lambda m: m.country == "UA"),
    (
        "operator_id with a country",
        {**WINDOW, "country_name": "Ukraine", "operator_id": "kyivstar"},
        lambda m: m.country == "UA" and m.brand == "Kyivstar",
    ),
    (
        "operator_id without a country is ignored",
        {**WINDOW, "operator_id": "Kyivstar"},
        lambda m: True,
    ),
    ("status", {**WINDOW, "status": "Delivered"}, lambda m: m.status == "delivered"),
    (
        "status Accepted: accepted and queued",
        {**WINDOW, "status": "accepted"},
        lambda m: m.status in ("accepted", "queued"),
    ),
    (
        "status array",
        {**WINDOW, "status": ["Sent", "Expired"]},
        lambda m: m.status in ("sent", "expired"),
    ),
    ("status Read (no Viber here)", {**WINDOW, "status": "Read"}, lambda m: False),
    ("status Moderation (none)", {**WINDOW, "status": "Moderation"}, lambda m: False),
    (
        "null and the string null mean not given",
        {
            **WINDOW,
            "originator": None,
            "status": "null",
            "country_name": "",
            "time_sent_from": None,
            "message_id": None,
        },
        lambda m: True,
    ),
    (
        "sl_clicks fields are checked and not applied",
        {**WINDOW, "sl_clicks": True, "sl_clicks_comp": ">", "sl_clicks_count": 3},
        lambda m: True,
    ),
    (
        "combination",
        {
            **WINDOW,
            "country_name": "Ukraine",
            "originator": "alpha",
            "status": ["Delivered", "Undelivered", "Sent", "Unknown"],
            "time_sent_from": "2026-02-10 00:00:00",
            "source_type": "api",
            "message_type": "sms",
        },
        lambda m: (
            m.country == "UA"
            and m.originator == "alpha"
            and m.status in ("delivered", "undelivered", "sent", "unknown")
            and m.time_sent is not None
            and m.source == "api"
        ),
    ),
    (
        "combination with msisdn and operator",
        {
            **WINDOW,
            "msisdn": ["380671234567", "380501234567", "46701234567"],
            "country_name": "Ukraine",
            "operator_id": "Vodafone",
        },
        lambda m: m.msisdn == "380501234567",
    ),
]


async def test_each_filter_and_combination_selects_the_right_messages(env: Env) -> None:
    for name, payload, selects in FILTER_CASES:
        key = await env.created(payload)
        await env.build()
        expected = [m.id for m in env.messages if IN_WINDOW(m.time_in) and selects(m)]
        if not expected:
            answer = await env.file(key)
            assert error_of(answer) == 93, name
            assert answer.status_code == 404
        else:
            rows = await env.rows(key)
            assert [row["message_ID"] for row in rows] == expected, name
        assert (await env.delete(key)).json() == {"error": 0}


async def test_message_id_overrides_every_other_filter(env: Env) -> None:
    ids = [env.messages[1].id, env.messages[7].id, env.messages[4].id]
    key = await env.created(
        {
            "message_id": [str(ids[0]), ids[1], f" {ids[2]} "],
            "time_in_from": "garbage",  # not even checked
            "status": "Lost",
            "country_name": "Atlantis",
            "originator": "nobody",
        }
    )
    await env.build()
    rows = await env.rows(key)
    assert sorted(row["message_ID"] for row in rows) == sorted(ids)
    assert [row["message_ID"] for row in rows] == sorted(ids)  # time_in order


async def test_message_ids_of_another_client_are_not_exported(env: Env) -> None:
    foreign = env.messages[-1].id + 1  # the other client's first message
    key = await env.created({"message_id": [foreign, env.messages[0].id]})
    await env.build()
    assert [row["message_ID"] for row in await env.rows(key)] == [env.messages[0].id]


async def test_routes_without_rest_prefix(env: Env) -> None:
    answer = await env.http.post("/stat/create", headers=env.headers, json=WINDOW)
    key = answer.json()["key"]
    await env.build()
    assert (await env.file(key, prefix="")).status_code == 200
    listed = await env.http.get("/stat/list", headers=env.headers)
    assert [f["key"] for f in listed.json()["files"]] == [key]
    deleted = await env.http.delete(f"/message/list/{key}", headers=env.headers)
    assert deleted.json() == {"error": 0}


# --- Errors -----------------------------------------------------------------------------------

CREATE_ERRORS: list[tuple[Any, int]] = [
    ({"message_id": ["1530913625", "abc"]}, 80),
    ({"message_id": [1.5]}, 80),
    ({"message_id": [0]}, 80),
    ({"message_id": [2**53]}, 80),
    ({"message_id": list(range(1, 302))}, 80),
    ({**WINDOW, "message_type": "mms"}, 81),
    ({**WINDOW, "message_type": 1}, 81),
    ({**WINDOW, "source_type": "fax"}, 82),
    ({**WINDOW, "status": "Lost"}, 83),
    ({**WINDOW, "status": ["Delivered", 5]}, 83),
    ({**WINDOW, "country_name": "Atlantis"}, 84),
    ({**WINDOW, "country_name": ["Ukraine"]}, 84),
    ({**WINDOW, "sl_clicks": True, "sl_clicks_comp": "!="}, 85),
    ({}, 86),
    ({"time_in_from": "2020-10-22 17:28:45"}, 86),
    ({"time_in_to": "2020-10-22 17:28:45"}, 86),
    ({"time_in_from": "yesterday", "time_in_to": "2020-10-22 17:28:45"}, 86),
    ({"time_in_from": "2020-10-23 00:00:00", "time_in_to": "2020-10-22 17:28:45"}, 86),
    ({"time_in_from": "2020-02-30 00:00:00", "time_in_to": "2020-03-01"}, 86),
    ({**WINDOW, "time_sent_from": 1603387725}, 86),
    ({"message_id": [], "msisdn": ["380505142322"]}, 86),
    ({**WINDOW, "msisdn": ["not a number"]}, 7),
    ({**WINDOW, "originator": ["x"]}, 7),
    ({**WINDOW, "sl_clicks_count": 1_000_000}, 7),
    ([WINDOW], 7),
]


@pytest.mark.parametrize(("payload", "code"), CREATE_ERRORS)
async def test_create_errors(env: Env, payload: Any, code: int) -> None:
    answer = await env.create(payload)
    assert error_of(answer) == code, answer.json()
    assert answer.status_code == 400


async def test_create_needs_a_key_and_a_json_body(env: Env) -> None:
    answer = await env.http.post(CREATE, json=WINDOW)
    assert (error_of(answer), answer.status_code) == (1, 401)
    answer = await env.http.post(CREATE, headers=env.headers, content=b"{not json")
    assert (error_of(answer), answer.status_code) == (7, 400)


async def test_file_errors_90_91_93_and_csv(env: Env) -> None:
    # 90: unknown, malformed, or another client's key.
    for key in ("0" * 32, "..x", "A" * 32, "x"):
        answer = await env.file(key)
        assert (error_of(answer), answer.status_code) == (90, 404), key
    other = await build_world(env.sessions, env.clock, name="third")
    foreign = await env.created(WINDOW)
    answer = await env.http.get(
        f"/rest/stat/file/id/{foreign}/format/json", headers={"X-API-KEY": other.live_key}
    )
    assert error_of(answer) == 90

    # 91: not built yet, with a hint when to come back.
    answer = await env.file(foreign)
    assert (error_of(answer), answer.status_code) == (91, 409)
    assert answer.headers["retry-after"] == "5"

    # csv needs message_type (81), whatever the state; an unknown format is 7.
    assert error_of(await env.file(foreign, "csv")) == 81
    assert error_of(await env.file(foreign, "pdf")) == 7
    await env.build()
    assert error_of(await env.file(foreign, "csv")) == 81
    assert (await env.file(foreign, "JSON")).status_code == 200

    # 93: built, and empty.
    empty = await env.created({**WINDOW, "country_name": "France"})
    await env.build()
    for fmt in ("json", "xml"):
        answer = await env.file(empty, fmt)
        assert (error_of(answer), answer.status_code) == (93, 404)

    # DELETE of an unknown key: 90.
    answer = await env.delete("f" * 32)
    assert (error_of(answer), answer.status_code) == (90, 404)


# --- Formats ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


async def test_three_formats_parse_back_to_the_same_rows(env: Env) -> None:
    key = await env.created({**WINDOW, "message_type": "sms"})
    await env.build()

    answer = await env.file(key, "json")
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.content)
    json_rows = orjson.loads(answer.content)["message_data"]
    assert [list(row) for row in json_rows] == [list(SMS_FIELDS)] * len(env.messages)

    answer = await env.file(key, "xml")
    assert answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.content)  # well-formed, or this raises
    assert root.tag == "response" and root.findtext("error") == "0"
    xml_rows = [
        {child.tag: child.text or "" for child in message}
        for message in root.find("message_data") or []
    ]

    answer = await env.file(key, "csv")
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    text = answer.content.decode("utf-8")  # UTF-8, or this raises
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    assert header == list(SMS_FIELDS)
    csv_rows = [dict(zip(header, line, strict=True)) for line in reader]

    expected = [{field: _text(value) for field, value in row.items()} for row in json_rows]
    assert [{f: r[f] for f in SMS_FIELDS} for r in csv_rows] == expected
    as_xml = [{f.replace(" ", "_"): v for f, v in row.items()} for row in expected]
    assert xml_rows == as_xml

    # And the values themselves, against what was stored.
    by_id = {m.id: m for m in env.messages}
    for row in json_rows:
        message = by_id[row["message_ID"]]
        assert row["message_type"] == "sms"
        assert row["msisdn"] == int(message.msisdn)
        assert row["Country_name"] == {"UA": "Ukraine", "SE": "Sweden"}[message.country]
        assert row["brand_name"] == message.brand
        assert row["mcc"] == {"UA": "255", "SE": "240"}[message.country]
        assert row["mnc"] == ""
        assert row["originator"] == message.originator
        assert row["price"] == f"{message.price:.7f} EUR"
        assert row["Incoming date"] == message.time_in.strftime("%Y-%m-%d %H:%M:%S")
        assert row["Sending date"] == (
            message.time_sent.strftime("%Y-%m-%d %H:%M:%S") if message.time_sent else None
        )
        assert row["DLR Date"] == (
            message.time_dr.strftime("%Y-%m-%d %H:%M:%S") if message.time_dr else None
        )
        assert row["Status"] == {"queued": "Accepted"}.get(
            message.status, message.status.capitalize()
        )
        assert row["body"] == message.body
    assert {row["brand_name"] for row in json_rows} >= {"Kyivstar", "Vodafone", "lifecell"}


# --- Limit, list, delete ----------------------------------------------------------------------


async def test_five_exports_per_client_then_92_until_one_is_deleted(env: Env) -> None:
    keys = [await env.created(WINDOW) for _ in range(5)]
    assert len(set(keys)) == 5
    answer = await env.create(WINDOW)
    assert (error_of(answer), answer.status_code) == (92, 409)
    # Another client is not limited by this one's exports.
    other = await build_world(env.sessions, env.clock, name="other2")
    assert (await env.create(WINDOW, key=other.live_key)).json()["error"] == 0

    await env.build()
    assert (await env.delete(keys[0])).json() == {"error": 0}
    assert not list(env.directory.glob(f"{keys[0]}.*"))
    assert error_of(await env.file(keys[0])) == 90
    assert error_of(await env.delete(keys[0])) == 90
    assert (await env.create(WINDOW)).json()["error"] == 0
    assert error_of(await env.create(WINDOW)) == 92


async def test_list_shows_state_rows_and_sizes(env: Env) -> None:
    assert await env.listing() == []
    full = await env.created({**WINDOW, "message_type": "sms"})
    empty = await env.created({**WINDOW, "originator": "nobody"})
    listed = await env.listing()
    assert [(f["key"], f["state"], f["rows"], f["size"]) for f in listed] == [
        (full, "pending", None, None),
        (empty, "pending", None, None),
    ]
    await env.build()
    await env.build()
    first, second = await env.listing()
    assert first["state"] == "ready" and first["rows"] == len(env.messages)
    assert first["message_type"] == "sms" and first["formats"] == ["json", "xml", "csv"]
    for fmt in ("json", "xml", "csv"):
        on_disk = (env.directory / f"{full}.{fmt}").stat().st_size
        assert first["sizes"][fmt] == on_disk
    assert first["size"] == sum(first["sizes"].values())
    assert first["created"] == "2026-03-01 12:00:00"
    assert first["expires"] == "2026-04-01 12:00:00"
    assert second["state"] == "empty" and second["rows"] == 0
    assert second["formats"] == ["json", "xml"] and second["message_type"] is None
    # Only this client's exports.
    other = await build_world(env.sessions, env.clock, name="other3")
    answer = await env.http.get(LIST, headers={"X-API-KEY": other.live_key})
    assert answer.json() == {"error": 0, "files": []}


# --- Expiry -----------------------------------------------------------------------------------


def test_one_month_after() -> None:
    assert one_month_after(datetime(2026, 1, 31, 5, tzinfo=UTC)) == datetime(
        2026, 2, 28, 5, tzinfo=UTC
    )
    assert one_month_after(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 15, tzinfo=UTC)
    assert one_month_after(datetime(2028, 1, 30, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)


async def test_exports_expire_a_month_after_creation_and_are_purged(env: Env) -> None:
    kept = [await env.created(WINDOW) for _ in range(5)]
    await env.build()
    assert list(env.directory.glob(f"{kept[0]}.*"))
    env.clock.set(datetime(2026, 4, 1, 11, 59, 59, tzinfo=UTC))  # a second before
    assert (await env.file(kept[0])).status_code == 200
    assert await env.worker.purge() == 0
    assert len(await env.listing()) == 5

    env.clock.set(datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    assert error_of(await env.file(kept[0])) == 90  # gone for the client at once
    assert error_of(await env.file(kept[1])) == 90  # (never built: not claimable either)
    assert await env.listing() == []
    assert (await env.create(WINDOW)).json()["error"] == 0  # no longer counted
    assert await env.worker.purge() == 5
    assert not list(env.directory.glob(f"{kept[0]}.*"))
    async with env.sessions() as session:
        left = (await session.execute(select(Export.key))).scalars().all()
    assert set(left).isdisjoint(kept) and len(left) == 1


async def test_purge_sweeps_files_left_by_crashes(env: Env) -> None:
    env.directory.mkdir(parents=True)
    orphan = env.directory / f"{'a' * 32}.json"
    part = env.directory / f"{'b' * 32}.xml.1234abcd.part"
    unrelated = env.directory / "notes.txt"
    for path in (orphan, part, unrelated):
        path.write_text("x")
    await env.worker.purge()
    assert orphan.exists() and part.exists()  # too fresh: might be in the making
    worker = env.make_worker()
    stale = worker.options.stale_part_seconds + 10
    old = datetime.now(UTC).timestamp() - stale
    for path in (orphan, part, unrelated):
        os.utime(path, (old, old))
    await worker.purge()
    assert not orphan.exists() and not part.exists()
    assert unrelated.exists()


# --- Callbacks --------------------------------------------------------------------------------


async def test_a_finished_export_is_posted_to_the_callback_url(env: Env) -> None:
    async with transaction(env.sessions) as session:
        await session.execute(
            update(Client)
            .where(Client.id == env.world.client_id)
            .values(callback_url="https://client.example/hooks", webhook_format="smartswitch")
        )
    own = await env.created({**WINDOW, "status": "Delivered"})
    other = await env.created({**WINDOW, "callback_url": "https://elsewhere.example/stat"})
    await env.build()
    await env.build()
    async with env.sessions() as session:
        deliveries = (
            (await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)))
            .scalars()
            .all()
        )
    assert [(d.event, d.url, d.message_id) for d in deliveries] == [
        ("export.ready", "https://client.example/hooks", None),
        ("export.ready", "https://elsewhere.example/stat", None),
    ]
    for delivery in deliveries:
        assert delivery.schedule == list(KETCHUP)  # the seed's, whatever the client's
        assert delivery.format == "ketchup" and delivery.content_type == "application/json"
    body = orjson.loads(deliveries[0].body)
    assert body["key"] == own and body["state"] == "ready" and body["error"] == 0
    assert body["files"]["json"] == f"/rest/stat/file/id/{own}/format/json"
    assert body["message_data"] == await env.rows(own)
    assert orjson.loads(deliveries[1].body)["key"] == other


async def test_a_large_export_is_announced_without_its_rows(env: Env) -> None:
    worker = env.make_worker(callback_inline_bytes=100)
    await env.created({**WINDOW, "callback_url": "https://client.example/x"})
    assert await worker.run_once()
    async with env.sessions() as session:
        delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
    body = orjson.loads(delivery.body)
    assert "message_data" not in body and body["rows"] == len(env.messages)


async def test_no_url_means_no_callback(env: Env) -> None:
    await env.created(WINDOW)
    await env.build()
    async with env.sessions() as session:
        assert (await session.execute(select(WebhookDelivery))).first() is None


async def test_the_webhook_worker_delivers_the_callback(env: Env) -> None:
    async with Receiver(fail_first=1) as receiver:
        key = await env.created({**WINDOW, "callback_url": receiver.url})
        await env.build()
        hooks = WebhookWorker(env.sessions, env.clock, WebhookOptions())
        try:
            assert await hooks.step() == 1
            env.clock.advance(60)  # the seed's first retry: a minute later
            assert await hooks.step() == 1
        finally:
            await hooks.stop(grace=1)
    assert [r.status for r in receiver.requests] == [500, 200]
    assert orjson.loads(receiver.requests[1].body)["key"] == key


# --- Crashes, leases, failures ----------------------------------------------------------------


async def test_a_build_that_died_is_rebuilt_from_scratch_after_its_lease(env: Env) -> None:
    key = await env.created(WINDOW)
    now = env.clock.now()
    async with transaction(env.sessions) as session:  # a worker claims it, then dies
        claimed = await ExportRepository(session).claim(now, now + timedelta(seconds=60), "dead")
    assert claimed is not None and claimed.key == key
    env.directory.mkdir(parents=True)
    leftover = env.directory / f"{key}.json.deadbeef.part"
    leftover.write_bytes(b'{"error":0,"message_data":[{"half')

    assert not await env.worker.run_once()  # leased: nobody else takes it
    assert error_of(await env.file(key)) == 91
    env.clock.advance(61)
    assert await env.worker.run_once()
    assert not leftover.exists()
    assert len(await env.rows(key)) == len(env.messages)
    async with env.sessions() as session:
        export = (await session.execute(select(Export).where(Export.key == key))).scalar_one()
    assert export.attempts == 2 and export.lease_owner is None and export.state == "ready"


async def test_an_export_whose_builds_keep_dying_fails_instead_of_waiting_forever(env: Env) -> None:
    key = await env.created(WINDOW)
    worker = env.make_worker(max_attempts=2)
    for owner in ("dead1", "dead2"):
        now = env.clock.now()
        async with transaction(env.sessions) as session:
            assert await ExportRepository(session).claim(now, now + timedelta(seconds=60), owner)
        env.clock.advance(61)
    assert await worker.run_once()  # the third claim gives up
    answer = await env.file(key)
    assert (error_of(answer), answer.status_code) == (5, 500)
    assert [(f["key"], f["state"]) for f in await env.listing()] == [(key, "failed")]
    assert not await worker.run_once()
    assert (await env.delete(key)).json() == {"error": 0}


class FailingStorage(LocalStorage):
    async def stage(self, key: str, fmt: str) -> Any:
        raise OSError("disk full")


async def test_a_failing_build_is_retried_then_marked_failed(env: Env, database_url: str) -> None:
    key = await env.created(WINDOW)
    reader = create_reader_engine(database_url)
    worker = ExportWorker(
        env.sessions,
        reader,
        FailingStorage(env.directory),
        env.clock,
        CountryTable.load(),
        ExportOptions(max_attempts=2, retry_delay=30),
    )
    try:
        assert await worker.run_once()
        assert error_of(await env.file(key)) == 91  # released, to retry
        assert not await worker.run_once()  # not before the retry delay
        env.clock.advance(31)
        assert await worker.run_once()
    finally:
        await reader.dispose()
    listed = await env.listing()
    assert listed[0]["state"] == "failed"
    async with env.sessions() as session:
        export = (await session.execute(select(Export))).scalar_one()
    assert export.last_error == "OSError: disk full" and export.attempts == 2


async def test_a_build_that_loses_its_lease_leaves_no_file(env: Env, database_url: str) -> None:
    reader = create_reader_engine(database_url)
    checks = iter([True, True, False])
    spec = ExportFilter(
        time_in_from=datetime(2026, 2, 1, tzinfo=UTC),
        time_in_until=datetime(2026, 3, 1, tzinfo=UTC),
    )
    try:
        with pytest.raises(LeaseLost):
            await build_files(
                reader,
                LocalStorage(env.directory),
                CountryTable.load(),
                client_id=env.world.client_id,
                key="c" * 32,
                spec=spec,
                batch_size=5,
                still_held=lambda: next(checks),
            )
    finally:
        await reader.dispose()
    assert list(env.directory.iterdir()) == []


async def test_an_export_deleted_while_it_builds_leaves_no_file(env: Env) -> None:
    key = await env.created(WINDOW)

    class DeletingStorage(LocalStorage):
        """Deletes the export (as DELETE would) once the first file is written."""

        async def stage(self, key_: str, fmt: str) -> Any:
            staged = await super().stage(key_, fmt)
            commit = staged.commit

            async def commit_then_delete() -> int:
                size = await commit()
                await forget()
                return size

            staged.commit = commit_then_delete  # type: ignore[method-assign]
            return staged

    async def forget() -> None:
        async with transaction(env.sessions) as session:
            await session.execute(delete(Export))

    worker = ExportWorker(
        env.sessions,
        env.worker.reader,
        DeletingStorage(env.directory),
        env.clock,
        CountryTable.load(),
        ExportOptions(),
    )
    assert await worker.run_once()
    assert not list(env.directory.glob(f"{key}.*"))


async def test_two_workers_build_different_exports(env: Env) -> None:
    keys = {await env.created(WINDOW) for _ in range(4)}
    second = env.make_worker()
    results = await asyncio.gather(*(w.run_once() for w in (env.worker, second) * 2))
    assert all(results)
    async with env.sessions() as session:
        exports = (await session.execute(select(Export))).scalars().all()
    assert {e.key for e in exports} == keys
    assert all(e.state == "ready" and e.attempts == 1 for e in exports)


async def test_the_running_worker_builds_a_new_export_at_once(
    database_url: str, sessions: Sessions, clock: FrozenClock, tmp_path: Path
) -> None:
    world = await build_world(sessions, clock)
    await seed_messages(sessions, world.client_id, 3)
    settings = {"export_dir": str(tmp_path), "export_poll_interval": 60}
    async with api_client(database_url, clock, with_workers=True, settings=settings) as http:
        headers = {"X-API-KEY": world.live_key}
        key = (await http.post(CREATE, headers=headers, json=WINDOW)).json()["key"]
        for _ in range(200):
            answer = await http.get(f"/rest/stat/file/id/{key}/format/json", headers=headers)
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert len(orjson.loads(answer.content)["message_data"]) == 3


# --- Test keys --------------------------------------------------------------------------------


async def test_test_keys_get_made_up_data_and_store_nothing(env: Env) -> None:
    key = (await env.create(WINDOW, key=env.world.test_key)).json()["key"]
    assert error_of(await env.create({}, key=env.world.test_key)) == 86  # still validated
    test = {"X-API-KEY": env.world.test_key}
    for fmt in ("json", "xml", "csv"):
        answer = await env.http.get(f"/rest/stat/file/id/{key}/format/{fmt}", headers=test)
        assert answer.status_code == 200
    rows = orjson.loads(
        (await env.http.get(f"/rest/stat/file/id/{key}/format/json", headers=test)).content
    )["message_data"]
    assert len(rows) == 3 and list(rows[0]) == list(SMS_FIELDS)
    assert (await env.http.get(LIST, headers=test)).json() == {"error": 0, "files": []}
    assert (await env.http.delete(f"/rest/message/list/{key}", headers=test)).json() == {"error": 0}
    assert await env.listing() == []
    assert not await env.worker.run_once()


class SlowStorage(LocalStorage):
    """Each write takes a while: a build that is still running when the worker stops."""

    async def stage(self, key: str, fmt: str) -> Any:
        staged = await super().stage(key, fmt)
        write = staged.write

        async def slow_write(data: bytes) -> None:
            await asyncio.sleep(0.05)
            await write(data)

        staged.write = slow_write  # type: ignore[method-assign]
        return staged


async def test_a_stopping_worker_hands_its_build_back_at_once(env: Env) -> None:
    key = await env.created(WINDOW)
    worker = ExportWorker(
        env.sessions,
        env.worker.reader,
        SlowStorage(env.directory),
        env.clock,
        CountryTable.load(),
        ExportOptions(batch_size=2),
    )
    await worker.start()
    try:
        for _ in range(200):
            if (await env.listing())[0]["state"] == "building":
                break
            await asyncio.sleep(0.01)
        assert (await env.listing())[0]["state"] == "building"
    finally:
        await worker.stop()
    async with env.sessions() as session:
        export = (await session.execute(select(Export))).scalar_one()
    assert (export.state, export.attempts, export.lease_owner) == ("pending", 0, None)
    assert export.locked_until is not None and export.locked_until <= env.clock.now()
    assert not list(env.directory.glob(f"{key}.*"))
    await env.build()  # another worker takes it at once
    assert len(await env.rows(key)) == len(env.messages)
