"""The seed-004 client REST API over HTTP, on SQLite and on PostgreSQL.

Covers the seed's own request examples and answer shapes, every SMS error code of
Appendix 1 with its HTTP status, all-or-nothing batches, test keys, the price endpoints and
status look-ups (long and short forms).
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import api_client, build_world
from tidings.accounts.models import ApiKey, Client
from tidings.billing.models import LedgerEntry
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.models import DispatchJob
from tidings.messages.models import Message, Task

Sessions = async_sessionmaker[AsyncSession]

CREATE = "/rest/sms/create"
PRICE = "/rest/sms/price"

# The HTTP status of each seed error code (errors.py); every other code answers 400.
HTTP_STATUS = {1: 401, 3: 403, 4: 404, 5: 500, 8: 402, 20: 404, 23: 409, 30: 404}

STATUS_KEYS = {
    "error",
    "id",
    "msisdn",
    "reference",
    "time_in",
    "time_sent",
    "time_dr",
    "status",
    "price",
    "currency",
}
SEED_STATUSES = {
    "accepted",
    "scheduled",
    "sent",
    "unknown",
    "delivered",
    "undelivered",
    "expired",
    "rejected",
    "failed",
}
TASK_KEYS = {
    "error",
    "task_id",
    "originator",
    "body",
    "validity",
    "total",
    "sent",
    "delivered",
    "expired",
    "undeliverable",
    "unknown",
    "totalprice",
    "currency",
}

# --- The seed's request examples (section "Отправка SMS"), tariff 9 as published. --------

SEED_PHONE: dict[str, Any] = {
    "originator": "test",
    "body": "test sms",
    "validity": 72,
    "tariff": 9,
    "destination": "phone",
    "msisdn": "380972000000",
    "reference": "12erdgm9",
}
SEED_PHONES: dict[str, Any] = {
    "destination": "phones",
    "phones": [
        {"msisdn": "380972000001", "reference": "12erdgm9"},
        {"msisdn": "380972000002", "reference": "12erdgn0"},
    ],
    "originator": "test",
    "body": "test sms",
    "validity": 72,
    "tariff": 9,
    # The seed's "ISO 8601 date" placeholder, made a real (future) date in the test.
    "send_time": None,
}
SEED_INDIVIDUAL: dict[str, Any] = {
    "validity": 72,
    "tariff": 9,
    "destination": "individual",
    "phones": [
        {
            "originator": "test1",
            "body": "test sms1",
            "msisdn": "380972000001",
            "reference": "12erdgm9",
        },
        {
            "originator": "test2",
            "body": "test sms2",
            "msisdn": "380972000002",
            "reference": "12erdgn0",
        },
    ],
    "scheduledDatetime": None,
}
SEED_EXAMPLES = {"phone": SEED_PHONE, "phones": SEED_PHONES, "individual": SEED_INDIVIDUAL}

MISSING = object()


def single(**changes: Any) -> dict[str, Any]:
    """A valid single-SMS request (tariff 0: UA at 0.02), with fields changed or removed."""
    body: dict[str, Any] = {
        "destination": "phone",
        "originator": "test",
        "body": "test sms",
        "msisdn": "380972000000",
        "reference": "ref1",
    }
    return _change(body, changes)


def batch(*phones: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A valid `phones` request; without phones given, two Ukrainian numbers."""
    entries = list(phones) or [
        {"msisdn": "380972000001", "reference": "ref1"},
        {"msisdn": "380972000002", "reference": "ref2"},
    ]
    body: dict[str, Any] = {
        "destination": "phones",
        "phones": entries,
        "originator": "test",
        "body": "test sms",
    }
    return _change(body, changes)


def individual(*phones: dict[str, Any], **changes: Any) -> dict[str, Any]:
    entries = list(phones) or [
        {"msisdn": "380972000001", "reference": "ref1", "originator": "a", "body": "one"},
        {"msisdn": "380972000002", "reference": "ref2", "originator": "b", "body": "two"},
    ]
    return _change({"destination": "individual", "phones": entries}, changes)


def _change(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if value is MISSING:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def key_header(key: str | None) -> dict[str, str]:
    return {} if key is None else {"X-API-KEY": key}


async def send(
    api: httpx.AsyncClient,
    method: str,
    path: str,
    payload: Any,
    key: str | None,
    transport: str = "json",
) -> httpx.Response:
    """Send `payload` the ways seed 004 allows: JSON, text/json, raw, multipart `payload`."""
    headers = key_header(key)
    if payload is None:
        return await api.request(method, path, headers=headers)
    if isinstance(payload, bytes):
        return await api.request(method, path, content=payload, headers=headers)
    text = json.dumps(payload)
    if transport == "json":
        return await api.request(method, path, json=payload, headers=headers)
    if transport == "text/json":
        headers["Content-Type"] = "text/json"
        return await api.request(method, path, content=text.encode(), headers=headers)
    if transport == "raw":  # no Content-Type at all, as `curl --data-binary` may send
        return await api.request(method, path, content=text.encode(), headers=headers)
    if transport == "multipart":
        return await api.request(method, path, files={"payload": (None, text)}, headers=headers)
    if transport == "multipart-file":
        files = {"payload": ("payload.json", text.encode(), "application/json")}
        return await api.request(method, path, files=files, headers=headers)
    raise AssertionError(f"unknown transport {transport}")


def assert_error(response: httpx.Response, code: int) -> None:
    """Seed 004's error shape, exactly: {"error": "<code>", "errorDescription": "..."}."""
    assert response.status_code == HTTP_STATUS.get(code, 400), response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "errorDescription"}, body
    assert body["error"] == str(code), body
    assert isinstance(body["errorDescription"], str) and body["errorDescription"].strip()


def assert_id(value: Any) -> None:
    assert isinstance(value, str) and value.isdigit(), value


async def snapshot(sessions: Sessions, client_id: int) -> dict[str, Any]:
    """What a request may have stored: rows of each kind, and the client's balance."""
    async with transaction(sessions) as session:
        client = await session.get(Client, client_id)
        assert client is not None
        return {
            "messages": await session.scalar(select(func.count()).select_from(Message)),
            "tasks": await session.scalar(select(func.count()).select_from(Task)),
            "jobs": await session.scalar(select(func.count()).select_from(DispatchJob)),
            "ledger": await session.scalar(select(func.count()).select_from(LedgerEntry)),
            "balance": client.balance,
        }


# build_world's starting point: nothing sent, one top-up ledger row, a balance of 10.
EMPTY = {"messages": 0, "tasks": 0, "jobs": 0, "ledger": 1, "balance": Decimal("10")}


# --- 1. The seed's examples and answer shapes ----------------------------------------------

TRANSPORTS = [
    ("POST", "json"),
    ("PUT", "json"),
    ("POST", "text/json"),
    ("PUT", "text/json"),
    ("POST", "raw"),
    ("POST", "multipart"),
    ("PUT", "multipart"),
]


def seed_example(name: str, now: datetime) -> dict[str, Any]:
    payload = json.loads(json.dumps(SEED_EXAMPLES[name]))
    for field in ("send_time", "scheduledDatetime"):
        if field in payload:
            payload[field] = (now + timedelta(days=1)).isoformat()
    return payload


@pytest.mark.parametrize(("method", "transport"), TRANSPORTS, ids=lambda v: str(v))
async def test_seed_single_example(
    database_url: str, sessions: Sessions, clock: FrozenClock, method: str, transport: str
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(
            api, method, CREATE, seed_example("phone", clock.now()), world.live_key, transport
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_id(body["id"])
    # Tariff 9 has UA at 0.025 in PRICES_CSV (the seed's example answer shows 0.02).
    assert body == {
        "error": "0",
        "id": body["id"],
        "reference": "12erdgm9",
        "price": "0.025",
        "currency": "EUR",
    }
    state = await snapshot(sessions, world.client_id)
    assert state == {**EMPTY, "messages": 1, "jobs": 1, "ledger": 2, "balance": Decimal("9.975")}
    async with transaction(sessions) as session:
        message = await session.get(Message, int(body["id"]))
        assert message is not None
        assert (message.tariff, message.originator, message.body) == (9, "test", "test sms")
        assert message.msisdn == "380972000000" and message.task_id is None


async def test_seed_single_example_on_tariff_0_answers_the_seeds_price(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await api.put(
            CREATE, json={**SEED_PHONE, "tariff": 0}, headers=key_header(world.live_key)
        )
    body = response.json()
    assert body == {
        "error": "0",
        "id": body["id"],
        "reference": "12erdgm9",
        "price": "0.02",
        "currency": "EUR",
    }


@pytest.mark.parametrize("example", ["phones", "individual"])
@pytest.mark.parametrize(("method", "transport"), TRANSPORTS, ids=lambda v: str(v))
async def test_seed_batch_examples(
    database_url: str,
    sessions: Sessions,
    clock: FrozenClock,
    example: str,
    method: str,
    transport: str,
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(
            api, method, CREATE, seed_example(example, clock.now()), world.live_key, transport
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", "error", "totalprice", "currency", "task_id"}
    assert_id(body["task_id"])
    for item in body["result"]:
        assert_id(item["id"])
    assert body == {
        "result": [
            {
                "reference": "12erdgm9",
                "id": body["result"][0]["id"],
                "error": "0",
                "price": "0.025",
                "currency": "EUR",
            },
            {
                "reference": "12erdgn0",
                "id": body["result"][1]["id"],
                "error": "0",
                "price": "0.025",
                "currency": "EUR",
            },
        ],
        "error": "0",
        "totalprice": "0.05",
        "currency": "EUR",
        "task_id": body["task_id"],
    }
    assert body["result"][0]["id"] != body["result"][1]["id"]
    state = await snapshot(sessions, world.client_id)
    assert state == {
        **EMPTY,
        "messages": 2,
        "tasks": 1,
        "jobs": 2,
        "ledger": 2,
        "balance": Decimal("9.95"),
    }
    async with transaction(sessions) as session:
        messages = (await session.scalars(select(Message).order_by(Message.reference))).all()
        # The placeholder date became a real one, a day ahead: both are scheduled.
        assert [m.status for m in messages] == ["scheduled", "scheduled"]
        assert {m.task_id for m in messages} == {int(body["task_id"])}
        expected = (
            [("test1", "test sms1"), ("test2", "test sms2")]
            if example == "individual"
            else [("test", "test sms")] * 2
        )
        assert [(m.originator, m.body) for m in messages] == expected


async def test_form_fields_without_payload_are_read_too(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    fields = {k: str(v) for k, v in SEED_PHONE.items()}
    async with api_client(database_url, clock) as api:
        form = await api.post(CREATE, data=fields, headers=key_header(world.live_key))
        phones = {
            **{k: str(v) for k, v in SEED_PHONES.items() if v is not None},
            "phones": json.dumps(
                [
                    {"msisdn": "380972000003", "reference": "f1"},
                    {"msisdn": "380972000004", "reference": "f2"},
                ]
            ),
        }
        multipart = await api.post(
            CREATE, data=phones, files={"x": (None, "")}, headers=key_header(world.live_key)
        )
    assert form.json()["error"] == "0" and form.json()["price"] == "0.025"
    assert multipart.json()["error"] == "0" and multipart.json()["totalprice"] == "0.05"


# --- 2. Every error code the SMS API emits ----------------------------------------------


def _days_ahead(days: int) -> Callable[[datetime], dict[str, Any]]:
    return lambda now: single(send_time=(now + timedelta(days=days)).isoformat())


def case(code: int, method: str, path: str, payload: Any, id: str) -> Any:
    return pytest.param(code, method, path, payload, id=f"{code}-{id}")


ERROR_CASES = [
    case(2, "POST", CREATE, single(destination=MISSING), "no-destination"),
    case(2, "PUT", CREATE, batch(phones=MISSING), "phones-missing"),
    case(2, "POST", CREATE, individual(phones=MISSING), "individual-phones-missing"),
    case(4, "POST", CREATE, single(destination="addressbook"), "addressbook"),
    case(4, "GET", "/rest/nothing/here", None, "unknown-rest-path"),
    case(4, "POST", "/rest/whatsapp/create", single(), "whatsapp-not-implemented"),
    case(4, "DELETE", CREATE, None, "unsupported-method"),
    case(6, "POST", CREATE, single(tariff=10), "tariff-10"),
    case(6, "POST", CREATE, single(tariff="x"), "tariff-x"),
    case(6, "POST", CREATE, single(tariff=-1), "tariff-negative"),
    case(6, "POST", CREATE, single(tariff=True), "tariff-boolean"),
    case(6, "POST", PRICE, single(tariff=10), "price-tariff-10"),
    case(6, "GET", "/rest/sms/prices/12", None, "prices-12"),
    case(6, "GET", "/rest/sms/prices/5", None, "prices-5-no-prices"),
    case(6, "GET", "/rest/sms/prices/3", None, "prices-3-no-sms-prices"),
    case(6, "GET", "/rest/sms/prices/x", None, "prices-x"),
    case(6, "GET", "/sms/prices/12", None, "short-prices-12"),
    case(7, "POST", CREATE, single(msisdn="4915123456789"), "no-price-for-germany"),
    case(7, "POST", PRICE, single(msisdn="4915123456789"), "price-no-price-for-germany"),
    case(
        7,
        "POST",
        CREATE,
        batch(
            {"msisdn": "380972000001", "reference": "ref1"},
            {"msisdn": "4915123456789", "reference": "ref2"},
        ),
        "no-price-in-batch",
    ),
    case(9, "POST", CREATE, single(tariff=3), "tariff-without-sms-prices"),
    case(9, "PUT", PRICE, single(tariff=3), "price-tariff-without-sms-prices"),
    case(10, "POST", CREATE, single(send_time="tomorrow"), "send-time-tomorrow"),
    case(10, "POST", CREATE, _days_ahead(40), "send-time-40-days-ahead"),
    case(10, "POST", CREATE, single(send_time=20260301), "send-time-number"),
    case(10, "POST", CREATE, individual(scheduledDatetime="soon"), "scheduled-datetime-not-iso"),
    case(20, "GET", "/rest/sms/999999", None, "unknown-id"),
    case(20, "GET", "/rest/sms/abc", None, "non-numeric-id"),
    case(20, "GET", "/rest/sms/reference/nope", None, "unknown-reference"),
    case(20, "GET", "/sms/999999", None, "short-unknown-id"),
    case(20, "GET", "/sms/nope", None, "short-unknown-reference"),
    case(21, "POST", CREATE, single(msisdn="abc"), "msisdn-abc"),
    case(21, "POST", CREATE, single(msisdn="123"), "msisdn-123"),
    case(21, "POST", CREATE, single(msisdn="38097200000"), "msisdn-invalid-ukrainian"),
    case(21, "POST", CREATE, single(msisdn="380012345678"), "msisdn-invalid-ukrainian-range"),
    case(21, "POST", CREATE, single(msisdn=MISSING), "msisdn-missing"),
    case(21, "POST", CREATE, single(msisdn=["380972000000"]), "msisdn-array"),
    case(21, "PUT", PRICE, single(msisdn="abc"), "price-msisdn-abc"),
    case(
        21,
        "POST",
        CREATE,
        batch(
            {"msisdn": "380972000001", "reference": "ref1"},
            {"msisdn": "12345", "reference": "ref2"},
        ),
        "msisdn-in-batch",
    ),
    case(22, "POST", CREATE, single(reference=MISSING), "reference-missing"),
    case(22, "POST", CREATE, single(reference=""), "reference-empty"),
    case(22, "POST", CREATE, batch({"msisdn": "380972000001"}), "batch-reference-missing"),
    case(
        23,
        "POST",
        CREATE,
        batch(
            {"msisdn": "380972000001", "reference": "same"},
            {"msisdn": "380972000002", "reference": "same"},
        ),
        "reference-twice-in-batch",
    ),
    case(24, "POST", CREATE, b"{not json", "body-not-json"),
    case(24, "POST", CREATE, b"", "http-body-empty"),
    case(24, "POST", CREATE, [single()], "body-a-json-array"),
    case(24, "POST", CREATE, "a string", "body-a-json-string"),
    case(24, "POST", CREATE, single(destination="sms"), "unknown-destination"),
    case(24, "POST", CREATE, batch(phones="380972000001"), "phones-not-an-array"),
    case(24, "POST", CREATE, batch(phones={"msisdn": "380972000001"}), "phones-an-object"),
    case(24, "POST", CREATE, batch(phones=[]), "phones-empty"),
    case(24, "POST", CREATE, batch(phones=["380972000001"]), "phones-item-a-string"),
    case(24, "POST", CREATE, individual(phones=[None]), "individual-item-null"),
    case(25, "POST", CREATE, single(originator=MISSING), "originator-missing"),
    case(25, "POST", CREATE, single(originator="a" * 15), "originator-15-chars"),
    case(25, "POST", CREATE, single(originator=""), "originator-empty"),
    case(25, "POST", CREATE, single(originator=7), "originator-number"),
    case(25, "POST", CREATE, single(originator="te\nst"), "originator-unprintable"),
    case(
        25,
        "POST",
        CREATE,
        individual({"msisdn": "380972000001", "reference": "r", "body": "b"}),
        "individual-originator-missing",
    ),
    case(26, "POST", CREATE, single(body=MISSING), "body-missing"),
    case(26, "POST", CREATE, single(body=""), "body-empty"),
    case(26, "POST", CREATE, single(body="  \n\t "), "body-whitespace"),
    case(26, "POST", CREATE, single(body="a" * 1531), "body-11-gsm-parts"),
    case(26, "POST", CREATE, single(body="ж" * 671), "body-11-ucs2-parts"),
    case(26, "PUT", PRICE, single(body="a" * 1531), "price-body-11-parts"),
    case(
        26,
        "POST",
        CREATE,
        individual({"msisdn": "380972000001", "reference": "r", "originator": "o"}),
        "individual-body-missing",
    ),
    case(27, "POST", CREATE, single(reference="has space"), "reference-with-space"),
    case(27, "POST", CREATE, single(reference="a" * 33), "reference-33-chars"),
    case(27, "POST", CREATE, single(reference="ref;1"), "reference-with-semicolon"),
    case(27, "POST", CREATE, single(reference=["r"]), "reference-array"),
    case(28, "POST", CREATE, single(validity=0), "validity-0"),
    case(28, "POST", CREATE, single(validity=73), "validity-73"),
    case(28, "POST", CREATE, single(validity="abc"), "validity-abc"),
    case(28, "POST", CREATE, single(validity=7.5), "validity-fraction"),
    case(29, "GET", "/rest/sms/task/abc", None, "task-id-abc"),
    case(29, "GET", "/rest/sms/task/-1", None, "task-id-negative"),
    case(30, "GET", "/rest/sms/task/999999", None, "unknown-task"),
    case(30, "GET", "/sms/task/999999", None, "short-unknown-task"),
    case(
        31,
        "POST",
        CREATE,
        batch(
            {"msisdn": "380972000001", "reference": "ref1"},
            {"msisdn": "380972000001", "reference": "ref2"},
        ),
        "same-phone-twice",
    ),
    case(
        31,
        "POST",
        CREATE,
        batch(
            {"msisdn": "380972000001", "reference": "ref1"},
            {"msisdn": "+380972000001", "reference": "ref2"},
        ),
        "same-phone-with-plus",
    ),
]


@pytest.mark.parametrize(("code", "method", "path", "payload"), ERROR_CASES)
async def test_error_codes(
    database_url: str,
    sessions: Sessions,
    clock: FrozenClock,
    code: int,
    method: str,
    path: str,
    payload: Any,
) -> None:
    world = await build_world(sessions, clock)
    if callable(payload):
        payload = payload(clock.now())
    async with api_client(database_url, clock) as api:
        response = await send(api, method, path, payload, world.live_key)
    assert_error(response, code)
    assert await snapshot(sessions, world.client_id) == EMPTY


@pytest.mark.parametrize("key", ["missing", "empty", "unknown", "revoked-live", "revoked-test"])
async def test_error_1_invalid_key(
    database_url: str, sessions: Sessions, clock: FrozenClock, key: str
) -> None:
    world = await build_world(sessions, clock)
    raw: str | None = {
        "missing": None,
        "empty": "",
        "unknown": "live_" + "x" * 32,
        "revoked-live": world.live_key,
        "revoked-test": world.test_key,
    }[key]
    if key.startswith("revoked"):
        async with transaction(sessions) as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.kind == key.removeprefix("revoked-"))
                .values(revoked_at=clock.now())
            )
    async with api_client(database_url, clock) as api:
        responses = [
            await send(api, "POST", CREATE, single(), raw),
            await send(api, "PUT", CREATE, batch(), raw),
            await send(api, "POST", PRICE, single(), raw),
            await send(api, "GET", "/rest/sms/1", None, raw),
            await send(api, "GET", "/sms/1", None, raw),
            await send(api, "GET", "/rest/sms/reference/ref1", None, raw),
            await send(api, "GET", "/rest/sms/task/1", None, raw),
            await send(api, "GET", "/rest/sms/task/abc", None, raw),
            await send(api, "GET", "/rest/sms/prices", None, raw),
            await send(api, "GET", "/sms/prices/9", None, raw),
        ]
    for response in responses:
        assert_error(response, 1)
    assert await snapshot(sessions, world.client_id) == EMPTY


async def test_error_1_comes_before_payload_errors(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        assert_error(await send(api, "POST", CREATE, b"{not json", None), 1)
        assert_error(await send(api, "POST", CREATE, single(msisdn="abc"), "nope"), 1)


async def test_error_3_blocked_client(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        created = await send(api, "POST", CREATE, single(), world.live_key)
        assert created.json()["error"] == "0"
        before = await snapshot(sessions, world.client_id)
        async with transaction(sessions) as session:
            await session.execute(
                update(Client).where(Client.id == world.client_id).values(blocked=True)
            )
        for raw in (world.live_key, world.test_key):
            assert_error(await send(api, "POST", CREATE, single(reference="ref2"), raw), 3)
            assert_error(await send(api, "PUT", PRICE, single(), raw), 3)
            assert_error(await send(api, "GET", f"/rest/sms/{created.json()['id']}", None, raw), 3)
            assert_error(await send(api, "GET", "/sms/ref1", None, raw), 3)
            assert_error(await send(api, "GET", "/rest/sms/prices/0", None, raw), 3)
            # Blocked is told before the payload's own errors.
            assert_error(await send(api, "POST", CREATE, b"{not json", raw), 3)
    assert await snapshot(sessions, world.client_id) == before


async def test_error_8_balance_too_small(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock, balance=Decimal("0.01"))
    before = await snapshot(sessions, world.client_id)
    assert before == {**EMPTY, "balance": Decimal("0.01")}
    async with api_client(database_url, clock) as api:
        assert_error(await send(api, "POST", CREATE, single(), world.live_key), 8)
        assert_error(await send(api, "PUT", CREATE, batch(), world.live_key), 8)
        # Quoting needs no money; a test key charges nothing, so it is not refused either.
        assert (await send(api, "POST", PRICE, single(), world.live_key)).json()["error"] == "0"
        assert (await send(api, "POST", CREATE, single(), world.test_key)).json()["error"] == "0"
    assert await snapshot(sessions, world.client_id) == before


async def test_error_12_batch_too_large(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    phones = [{"msisdn": f"38097200000{i}", "reference": f"r{i}"} for i in range(1, 5)]
    async with api_client(database_url, clock, settings={"max_batch_size": 3}) as api:
        assert_error(await send(api, "PUT", CREATE, batch(*phones), world.live_key), 12)
        assert_error(await send(api, "PUT", PRICE, batch(*phones), world.live_key), 12)
        assert_error(await send(api, "PUT", CREATE, batch(*phones), world.test_key), 12)
        assert await snapshot(sessions, world.client_id) == EMPTY
        exactly = await send(api, "PUT", CREATE, batch(*phones[:3]), world.live_key)
    assert exactly.json()["error"] == "0" and len(exactly.json()["result"]) == 3


async def test_error_20_another_clients_message_and_30_task(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    ours = await build_world(sessions, clock)
    other = await build_world(sessions, clock, name="other")
    async with api_client(database_url, clock) as api:
        theirs = (
            await send(api, "POST", CREATE, single(reference="theirs"), other.live_key)
        ).json()
        their_batch = (await send(api, "PUT", CREATE, batch(), other.live_key)).json()
        assert theirs["error"] == "0" and their_batch["error"] == "0"
        key = ours.live_key
        assert_error(await send(api, "GET", f"/rest/sms/{theirs['id']}", None, key), 20)
        assert_error(await send(api, "GET", "/rest/sms/reference/theirs", None, key), 20)
        assert_error(await send(api, "GET", f"/sms/{theirs['id']}", None, key), 20)
        assert_error(await send(api, "GET", "/sms/theirs", None, key), 20)
        task = their_batch["task_id"]
        assert_error(await send(api, "GET", f"/rest/sms/task/{task}", None, key), 30)
        # The owner still sees them.
        mine = await send(api, "GET", f"/rest/sms/{theirs['id']}", None, other.live_key)
        assert mine.json()["reference"] == "theirs"
        # References are per client: ours may reuse theirs.
        reused = await send(api, "POST", CREATE, single(reference="theirs"), key)
        assert reused.json()["error"] == "0"


async def test_error_23_reference_reused_across_requests(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        first = await send(api, "POST", CREATE, single(reference="once"), world.live_key)
        assert first.json()["error"] == "0"
        after_first = await snapshot(sessions, world.client_id)
        assert after_first["balance"] == Decimal("9.98")
        again = await send(
            api, "POST", CREATE, single(reference="once", msisdn="380972000009"), world.live_key
        )
        assert_error(again, 23)
        in_batch = await send(
            api,
            "PUT",
            CREATE,
            batch(
                {"msisdn": "380972000001", "reference": "fresh"},
                {"msisdn": "380972000002", "reference": "once"},
            ),
            world.live_key,
        )
        assert_error(in_batch, 23)
    assert await snapshot(sessions, world.client_id) == after_first


# --- 3. All or nothing ---------------------------------------------------------------------

BAD_LAST_ITEMS = {
    "bad-msisdn": ({"msisdn": "abc", "reference": "ref3"}, 21),
    "duplicate-phone": ({"msisdn": "380972000001", "reference": "ref3"}, 31),
    "missing-reference": ({"msisdn": "380972000003"}, 22),
    "no-price": ({"msisdn": "4915123456789", "reference": "ref3"}, 7),
}


@pytest.mark.parametrize("destination", ["phones", "individual"])
@pytest.mark.parametrize("bad", list(BAD_LAST_ITEMS))
async def test_batch_with_a_bad_last_item_stores_nothing(
    database_url: str, sessions: Sessions, clock: FrozenClock, bad: str, destination: str
) -> None:
    world = await build_world(sessions, clock)
    last, code = BAD_LAST_ITEMS[bad]
    phones = [
        {"msisdn": "380972000001", "reference": "ref1"},
        {"msisdn": "380972000002", "reference": "ref2"},
        dict(last),
    ]
    if destination == "individual":
        request = individual(*({**p, "originator": "o", "body": "b"} for p in phones))
    else:
        request = batch(*phones)
    async with api_client(database_url, clock) as api:
        assert_error(await send(api, "PUT", CREATE, request, world.live_key), code)
        # The good items alone still go through: nothing of the failed attempt lingers.
        good = await send(api, "PUT", CREATE, batch(*phones[:2]), world.live_key)
    assert await snapshot(sessions, world.client_id) == {
        **EMPTY,
        "messages": 2,
        "tasks": 1,
        "jobs": 2,
        "ledger": 2,
        "balance": Decimal("9.96"),
    }
    assert good.json()["error"] == "0"


async def test_failed_batch_leaves_state_exactly_as_it_was(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    bad = batch(
        {"msisdn": "380972000001", "reference": "ref1"},
        {"msisdn": "380972000002", "reference": "ref2"},
        {"msisdn": "380972000002", "reference": "ref3"},
    )
    async with api_client(database_url, clock) as api:
        assert_error(await send(api, "PUT", CREATE, bad, world.live_key), 31)
    assert await snapshot(sessions, world.client_id) == EMPTY


# --- 4. Test keys --------------------------------------------------------------------------


async def test_test_key_answers_like_live_but_stores_nothing(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        one = await send(api, "POST", CREATE, SEED_PHONE, world.test_key)
        many = await send(api, "PUT", CREATE, batch(), world.test_key)
        # A test key does not reserve references: the same request answers again.
        again = await send(api, "POST", CREATE, SEED_PHONE, world.test_key)
        bad = await send(api, "POST", CREATE, single(msisdn="abc"), world.test_key)
        dup = await send(
            api,
            "POST",
            CREATE,
            batch(
                {"msisdn": "380972000001", "reference": "ref1"},
                {"msisdn": "380972000001", "reference": "ref2"},
            ),
            world.test_key,
        )
        long = await send(api, "POST", CREATE, single(body="a" * 161), world.test_key)
    body = one.json()
    assert_id(body["id"])
    assert body == {
        "error": "0",
        "id": body["id"],
        "reference": "12erdgm9",
        "price": "0.025",
        "currency": "EUR",
    }
    assert again.json()["error"] == "0"
    result = many.json()
    assert set(result) == {"result", "error", "totalprice", "currency", "task_id"}
    assert_id(result["task_id"])
    assert [(r["reference"], r["price"], r["error"]) for r in result["result"]] == [
        ("ref1", "0.02", "0"),
        ("ref2", "0.02", "0"),
    ]
    for item in result["result"]:
        assert_id(item["id"])
        assert item["currency"] == "EUR"
    assert result["totalprice"] == "0.04" and result["currency"] == "EUR"
    assert long.json()["price"] == "0.04"
    assert_error(bad, 21)
    assert_error(dup, 31)
    assert await snapshot(sessions, world.client_id) == EMPTY


async def test_test_key_status_looks_like_a_live_one(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        created = (await send(api, "POST", CREATE, single(reference="one"), world.live_key)).json()
        live = (await send(api, "GET", f"/rest/sms/{created['id']}", None, world.live_key)).json()
        live_task = (await send(api, "PUT", CREATE, batch(), world.live_key)).json()["task_id"]
        task = (await send(api, "GET", f"/rest/sms/task/{live_task}", None, world.live_key)).json()
        fakes = [
            await send(api, "GET", "/rest/sms/12345", None, world.test_key),
            await send(api, "GET", "/rest/sms/reference/abc", None, world.test_key),
            await send(api, "GET", "/sms/12345", None, world.test_key),
            await send(api, "GET", "/sms/abc", None, world.test_key),
        ]
        fake_task = await send(api, "GET", "/rest/sms/task/777", None, world.test_key)
        bad_task = await send(api, "GET", "/rest/sms/task/x", None, world.test_key)
    assert set(live) == STATUS_KEYS and set(task) == TASK_KEYS
    for response in fakes:
        assert response.status_code == 200
        fake = response.json()
        assert set(fake) == STATUS_KEYS
        assert fake["error"] == "0" and fake["currency"] == "EUR"
        assert_id(fake["id"])
        assert fake["status"] in SEED_STATUSES
        assert fake["price"] == "0.02" and fake["msisdn"].startswith("380")
        time_in = datetime.strptime(fake["time_in"], "%Y-%m-%d %H:%M:%S")
        assert time_in <= clock.now().replace(tzinfo=None)
    assert fakes[0].json()["id"] == "12345"
    assert fakes[1].json()["reference"] == "abc"
    assert fake_task.status_code == 200
    assert set(fake_task.json()) == TASK_KEYS and fake_task.json()["task_id"] == "777"
    assert_error(bad_task, 29)  # test keys are validated like live ones


# --- 5. Prices -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_price_quotes_and_stores_nothing(
    database_url: str, sessions: Sessions, clock: FrozenClock, method: str
) -> None:
    world = await build_world(sessions, clock)
    cases = [
        (single(body="a" * 160), "0.02"),
        (single(body="a" * 161), "0.04"),  # GSM 7-bit: 2 parts
        (single(body="ж" * 70), "0.02"),
        (single(body="ж" * 71), "0.04"),  # UCS-2: 2 parts
        (single(tariff=9), "0.025"),
        (single(msisdn="46701234567"), "0.045"),  # Sweden
        (batch(), "0.04"),
        (batch(body="a" * 161), "0.08"),
        (individual(), "0.04"),
        (SEED_PHONE, "0.025"),
        (seed_example("phones", clock.now()), "0.05"),
    ]
    async with api_client(database_url, clock) as api:
        for request, total in cases:
            for key in (world.live_key, world.test_key):
                response = await send(api, method, PRICE, request, key)
                assert response.status_code == 200, response.text
                assert response.json() == {"error": "0", "totalprice": total, "currency": "EUR"}
        # Quoting twice with the same reference is fine: nothing is reserved.
        created = await send(api, method, CREATE, single(), world.live_key)
        assert created.json()["error"] == "0"
        quote = await send(api, method, PRICE, single(), world.live_key)
        assert quote.json()["error"] == "0"
    assert await snapshot(sessions, world.client_id) == {
        **EMPTY,
        "messages": 1,
        "jobs": 1,
        "ledger": 2,
        "balance": Decimal("9.98"),
    }


UA_0 = {
    "type": "sms",
    "country": "UA",
    "country_name": "Ukraine",
    "mcc": "255",
    "price": "0.02",
    "currency": "EUR",
}
SE_0 = {
    "type": "sms",
    "country": "SE",
    "country_name": "Sweden",
    "mcc": "240",
    "price": "0.045",
    "currency": "EUR",
}


@pytest.mark.parametrize(
    ("path", "prices"),
    [
        ("/rest/sms/prices", [SE_0, UA_0]),
        ("/rest/sms/prices/0", [SE_0, UA_0]),
        ("/sms/prices", [SE_0, UA_0]),
        ("/sms/prices/0", [SE_0, UA_0]),
        ("/rest/sms/prices/9", [{**UA_0, "price": "0.025"}]),
        ("/sms/prices/9", [{**UA_0, "price": "0.025"}]),
    ],
)
async def test_price_tables(
    database_url: str, sessions: Sessions, clock: FrozenClock, path: str, prices: list[Any]
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        for key in (world.live_key, world.test_key):
            response = await send(api, "GET", path, None, key)
            assert response.status_code == 200
            assert response.json() == {"error": "0", "prices": prices}


# --- 6. Status look-ups --------------------------------------------------------------------


async def test_status_of_a_fresh_and_a_scheduled_message(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    later = clock.now() + timedelta(hours=2)
    key = world.live_key
    async with api_client(database_url, clock) as api:
        fresh = (await send(api, "POST", CREATE, single(reference="fresh"), key)).json()
        scheduled = (
            await send(
                api,
                "POST",
                CREATE,
                single(reference="later", msisdn="380972000001", send_time=later.isoformat()),
                key,
            )
        ).json()
        naive_later = (
            await send(
                api,
                "POST",
                CREATE,
                single(
                    reference="naive",
                    msisdn="380972000002",
                    send_time=later.replace(tzinfo=None).isoformat(),
                ),
                key,
            )
        ).json()
        past = (
            await send(
                api,
                "POST",
                CREATE,
                single(
                    reference="past",
                    msisdn="380972000003",
                    send_time=(clock.now() - timedelta(days=3)).isoformat(),
                ),
                key,
            )
        ).json()
        views = {
            name: [
                (await send(api, "GET", path, None, key)).json()
                for path in (
                    f"/rest/sms/{created['id']}",
                    f"/rest/sms/reference/{created['reference']}",
                    f"/sms/{created['id']}",
                    f"/sms/{created['reference']}",
                    f"/sms/reference/{created['reference']}",
                )
            ]
            for name, created in {
                "fresh": fresh,
                "later": scheduled,
                "naive": naive_later,
                "past": past,
            }.items()
        }
    for found in views.values():
        assert all(view == found[0] for view in found)
    assert views["fresh"][0] == {
        "error": "0",
        "id": fresh["id"],
        "msisdn": "380972000000",
        "reference": "fresh",
        "time_in": "2026-03-01 12:00:00",
        "time_sent": None,
        "time_dr": None,
        "status": "accepted",
        "price": "0.02",
        "currency": "EUR",
    }
    assert views["later"][0]["status"] == "scheduled"
    assert views["naive"][0]["status"] == "scheduled"  # no offset: UTC
    assert views["past"][0]["status"] == "accepted"  # a past time means now
    async with transaction(sessions) as session:
        message = await session.get(Message, int(scheduled["id"]))
        assert message is not None and message.send_at == later
        assert message.expires_at == later + timedelta(hours=72)


async def test_task_status_and_short_form_resolution_order(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    """`GET /sms/{key}` resolves, as sms.py `_short_form` does: a digit key as a message id
    first, then any key as a reference, then a digit key as a task id."""
    ours = await build_world(sessions, clock)
    other = await build_world(sessions, clock, name="other")
    key = ours.live_key
    async with api_client(database_url, clock) as api:
        # The other client's messages take the low message ids, so that our task's id is
        # not also one of our message ids.
        for n in range(3):
            created = await send(
                api,
                "POST",
                CREATE,
                single(reference=f"o{n}", msisdn=f"38097200010{n}"),
                other.live_key,
            )
            assert created.json()["error"] == "0"
        made = (await send(api, "PUT", CREATE, batch(validity=12), key)).json()
        task_id = made["task_id"]
        ids = [item["id"] for item in made["result"]]
        assert task_id not in ids
        task = (await send(api, "GET", f"/rest/sms/task/{task_id}", None, key)).json()
        short_task = (await send(api, "GET", f"/sms/{task_id}", None, key)).json()
        short_task_path = (await send(api, "GET", f"/sms/task/{task_id}", None, key)).json()

        # A reference made of digits: the same text as a message id resolves to that message
        # (id first); digits that are no message id resolve to the reference.
        first_id = ids[0]
        shadow = (
            await send(api, "POST", CREATE, single(reference=first_id, msisdn="380972000005"), key)
        ).json()
        by_id_first = (await send(api, "GET", f"/sms/{first_id}", None, key)).json()
        digits_ref = (
            await send(
                api, "POST", CREATE, single(reference="987654321", msisdn="380972000006"), key
            )
        ).json()
        by_digit_ref = (await send(api, "GET", "/sms/987654321", None, key)).json()
        # A reference equal to the task id text wins over the task.
        await send(api, "POST", CREATE, single(reference=task_id, msisdn="380972000007"), key)
        ref_before_task = (await send(api, "GET", f"/sms/{task_id}", None, key)).json()
    assert task == {
        "error": "0",
        "task_id": task_id,
        "originator": "test",
        "body": "test sms",
        "validity": 12,
        "total": "2",
        "sent": "0",
        "delivered": "0",
        "expired": "0",
        "undeliverable": "0",
        "unknown": "0",
        "totalprice": "0.04",
        "currency": "EUR",
    }
    assert short_task == task and short_task_path == task
    assert by_id_first["id"] == first_id and by_id_first["reference"] == "ref1"
    assert shadow["error"] == "0"
    assert by_digit_ref["id"] == digits_ref["id"] and by_digit_ref["reference"] == "987654321"
    assert set(ref_before_task) == STATUS_KEYS and ref_before_task["reference"] == task_id


async def test_individual_task_has_no_shared_text(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        made = (await send(api, "PUT", CREATE, individual(), world.live_key)).json()
        task = (
            await send(api, "GET", f"/rest/sms/task/{made['task_id']}", None, world.live_key)
        ).json()
    assert task["originator"] is None and task["body"] is None
    assert task["validity"] == 72 and task["total"] == "2" and task["totalprice"] == "0.04"


# --- Bugs found by these tests, fixed; kept as regression tests ---------------------------------


async def test_bug_validity_double_minus_is_error_28(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(api, "POST", CREATE, single(validity="--5"), world.live_key)
    assert_error(response, 28)


async def test_bug_tariff_superscript_digit_is_error_6(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(api, "POST", CREATE, single(tariff="²"), world.live_key)
    assert_error(response, 6)


async def test_bug_send_time_at_the_end_of_time_is_error_10(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(
            api, "POST", CREATE, single(send_time="9999-12-31T23:59:59-01:00"), world.live_key
        )
    assert_error(response, 10)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/rest/sms/99999999999999999999", 20),
        ("/sms/99999999999999999999", 20),
        ("/rest/sms/task/99999999999999999999", 30),
    ],
)
async def test_bug_huge_ids_are_not_found(
    database_url: str, sessions: Sessions, clock: FrozenClock, path: str, code: int
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(api, "GET", path, None, world.live_key)
    assert_error(response, code)


@pytest.mark.parametrize(
    ("path", "code"), [("/rest/sms/prices/%C2%B2", 6), ("/rest/sms/task/%C2%B2", 29)]
)
async def test_bug_non_ascii_digits_in_paths(
    database_url: str, sessions: Sessions, clock: FrozenClock, path: str, code: int
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(api, "GET", path, None, world.live_key)
    assert_error(response, code)


async def test_bug_seed_spelling_of_addressbook_is_error_4(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(api, "POST", CREATE, single(destination="addresbook"), world.live_key)
    assert_error(response, 4)


@pytest.mark.parametrize(
    ("changes", "codes"),
    [
        ({"body": "a\u0000b"}, {"0", "26"}),
        # Seed: an unusable callback_url is ignored, not an error.
        ({"callback_url": "http://example.com/\u0000"}, {"0"}),
    ],
    ids=["nul-in-body", "nul-in-callback-url"],
)
async def test_bug_nul_characters_never_reach_the_database(
    request: pytest.FixtureRequest,
    database_url: str,
    sessions: Sessions,
    clock: FrozenClock,
    changes: dict[str, Any],
    codes: set[str],
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(api, "POST", CREATE, single(**changes), world.live_key)
    assert response.status_code in (200, 400), response.text
    assert response.json()["error"] in codes


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/rest/sms/2147483648", 20),
        ("/sms/2147483648", 20),
        ("/rest/sms/task/2147483648", 30),
    ],
)
async def test_bug_ids_beyond_int32_are_not_found(
    request: pytest.FixtureRequest,
    database_url: str,
    sessions: Sessions,
    clock: FrozenClock,
    path: str,
    code: int,
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        response = await send(api, "GET", path, None, world.live_key)
    assert_error(response, code)


async def test_bug_uploaded_payload_file_is_closed(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with api_client(database_url, clock) as api:
            response = await send(api, "POST", CREATE, SEED_PHONE, world.live_key, "multipart-file")
            body = response.json()
            del response
        gc.collect()
    assert body["error"] == "0" and body["price"] == "0.025"
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, [str(w.message) for w in leaks]
