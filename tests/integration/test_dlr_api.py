"""/api/dlr on each database: the seeds' requests verbatim, and everything around them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import (
    World,
    accept_messages,
    api_client,
    build_world,
    claim_and_submit,
    history_statuses,
    record_submits,
    send_all,
    set_dlr_credentials,
)
from tidings.clock import FrozenClock
from tidings.db.engine import transaction
from tidings.delivery.models import Receipt
from tidings.messages.models import Message
from tidings.routing.service import issue_dlr_credentials

SEED_ONE = (
    "/api/dlr?message_id=1561370632513&message_state=delivered&request_id=1"
    "&_login=LOGIN&_password=PASSWORD"
)
SEED_TWO = (
    "/api/dlr?message_id=1561370632513&message_state=delivered&request_id=1"
    "&message_id=1561370632522&message_state=delivered&request_id=2"
    "&_login=LOGIN&_password=PASSWORD"
)
SEED_AUTH_ERROR = {
    "errors": [
        {
            "code": "authentication",
            "detail": "Please check your login and password",
            "title": "Authentication error",
        }
    ]
}
JSON_API = "application/vnd.api+json"
CREDENTIALS = {"_login": "LOGIN", "_password": "PASSWORD"}


@asynccontextmanager
async def gateway(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    supplier_ids: Sequence[str] = ("1561370632513", "1561370632522"),
) -> AsyncIterator[tuple[httpx.AsyncClient, World, list[int]]]:
    """A world whose messages the supplier took under `supplier_ids`; it posts as LOGIN."""
    world = await build_world(sessions, clock)
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    ids = await accept_messages(sessions, clock, world, len(supplier_ids))
    await send_all(sessions, clock, world, supplier_ids)
    clock.advance(10)
    async with api_client(database_url, clock) as api:
        yield api, world, ids


async def statuses(sessions: async_sessionmaker[AsyncSession], ids: Sequence[int]) -> list[str]:
    async with sessions() as session:
        found = {m.id: m.status for m in await session.scalars(select(Message))}
    return [found[i] for i in ids]


async def receipts(sessions: async_sessionmaker[AsyncSession]) -> list[Receipt]:
    async with sessions() as session:
        return list(await session.scalars(select(Receipt).order_by(Receipt.id)))


def ok(receipt_id: int, request_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"attributes": {"status": "ok"}, "id": str(receipt_id)}
    if request_id is not None:
        item["meta"] = {"request_id": request_id}
    item["type"] = "dlr"
    return item


# --- The seeds' examples -------------------------------------------------------------


async def test_seed_report_of_one_message(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.post(SEED_ONE)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == JSON_API
    [receipt] = await receipts(sessions)
    assert answer.json() == {"data": ok(receipt.id, "1")}
    assert list(answer.json()["data"]) == ["attributes", "id", "meta", "type"]
    assert (receipt.supplier_message_id, receipt.status, receipt.message_id) == (
        "1561370632513",
        "delivered",
        ids[0],
    )
    assert await statuses(sessions, ids) == ["delivered", "sent"]


async def test_seed_report_of_two_messages(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.post(SEED_TWO)
    assert answer.status_code == 200
    first, second = await receipts(sessions)
    assert answer.json() == {"data": [ok(first.id, "1"), ok(second.id, "2")]}
    assert await statuses(sessions, ids) == ["delivered", "delivered"]
    async with sessions() as session:
        message = await session.get(Message, ids[0])
    assert message is not None and message.time_dr == clock.now()


async def test_seed_authentication_error(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, world, ids):
        async with transaction(sessions) as session:  # the supplier's credentials changed
            await issue_dlr_credentials(session, str(world.supplier_id))
        answer = await api.post(SEED_ONE)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == JSON_API
    assert answer.json() == SEED_AUTH_ERROR
    assert await receipts(sessions) == []
    assert await statuses(sessions, ids) == ["sent", "sent"]


# --- Authentication ------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        "",
        "&_login=LOGIN",
        "&_password=PASSWORD",
        "&_login=LOGIN&_password=password",
        "&_login=login&_password=PASSWORD",
        "&_login=LOGIN&_password=",
        "&_login=LOGIN&_password=PASSWORD&_login=OTHER",
    ],
)
async def test_bad_credentials_are_refused(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    credentials: str,
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, _ids):
        answer = await api.post(f"/api/dlr?message_id=1561370632513&message_state=x{credentials}")
    assert (answer.status_code, answer.json()) == (401, SEED_AUTH_ERROR)
    assert await receipts(sessions) == []


async def test_issued_credentials_work_and_replace_the_old_ones(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, world, ids):
        async with transaction(sessions) as session:
            first = await issue_dlr_credentials(session, str(world.supplier_id))
        async with transaction(sessions) as session:
            second = await issue_dlr_credentials(session, str(world.supplier_id))
        triple = {"message_id": "1561370632513", "message_state": "delivered"}
        old = await api.post(
            "/api/dlr", data={**triple, "_login": first.login, "_password": first.password}
        )
        new = await api.post(
            "/api/dlr", data={**triple, "_login": second.login, "_password": second.password}
        )
    assert first.login != second.login and first.password != second.password
    assert (old.status_code, new.status_code) == (401, 200)
    assert await statuses(sessions, ids) == ["delivered", "sent"]


async def test_a_supplier_cannot_report_for_another_suppliers_messages(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        other = await build_world(sessions, clock, name="other")
        await set_dlr_credentials(sessions, other.supplier_id, "OTHER", "SECRET")
        answer = await api.post(
            "/api/dlr?message_id=1561370632513&message_state=undeliverable"
            "&_login=OTHER&_password=SECRET"
        )
    assert answer.status_code == 200  # kept, as any id not (yet) known for this supplier
    [receipt] = await receipts(sessions)
    assert (receipt.supplier_id, receipt.message_id) == (other.supplier_id, None)
    assert await statuses(sessions, ids) == ["sent", "sent"]


# --- Where arguments come from -------------------------------------------------------


async def test_get_works_like_post(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.get(SEED_TWO)
    first, second = await receipts(sessions)
    assert answer.json() == {"data": [ok(first.id, "1"), ok(second.id, "2")]}
    assert await statuses(sessions, ids) == ["delivered", "delivered"]


async def test_form_body_with_credentials_in_the_query(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.post(
            "/api/dlr?_login=LOGIN&_password=PASSWORD",
            content=(
                "message_id=1561370632513&message_state=expired"
                "&message_id=1561370632522&message_state=undeliverable"
            ),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    first, second = await receipts(sessions)
    assert answer.json() == {"data": [ok(first.id), ok(second.id)]}
    assert await statuses(sessions, ids) == ["expired", "undelivered"]


async def test_multipart_form(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.post(
            "/api/dlr",
            data={
                **CREDENTIALS,
                "message_id": ["1561370632513", "1561370632522"],
                "message_state": ["rejected", "delivered"],
                "request_id": ["a", "b"],
            },
            files={"unused": ("x.txt", b"ignored")},
        )
    first, second = await receipts(sessions)
    assert answer.json() == {"data": [ok(first.id, "a"), ok(second.id, "b")]}
    assert await statuses(sessions, ids) == ["rejected", "delivered"]


@pytest.mark.parametrize("content_type", ["application/json", JSON_API, None])
async def test_json_body(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    content_type: str | None,
) -> None:
    body = {
        **CREDENTIALS,
        "message_id": [1561370632513, "1561370632522"],
        "message_state": ["delivered", "expired"],
        "request_id": [None, "r2"],
    }
    headers = {"content-type": content_type} if content_type else {}
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.post("/api/dlr", content=orjson.dumps(body), headers=headers)
    first, second = await receipts(sessions)
    assert answer.json() == {"data": [ok(first.id), ok(second.id, "r2")]}
    assert await statuses(sessions, ids) == ["delivered", "expired"]


async def test_json_body_with_one_triple_answers_an_object(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.post(
            "/api/dlr",
            json={**CREDENTIALS, "message_id": "1561370632522", "message_state": "delivered"},
        )
    [receipt] = await receipts(sessions)
    assert answer.json() == {"data": ok(receipt.id)}
    assert await statuses(sessions, ids) == ["sent", "delivered"]


# --- Statuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("enroute", "sent"),
        ("accepted", "sent"),
        ("unknown", "unknown"),
        ("delivered", "delivered"),
        ("expired", "expired"),
        ("undeliverable", "undelivered"),
        ("rejected", "rejected"),
    ],
)
async def test_each_state_moves_the_message(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    state: str,
    expected: str,
) -> None:
    async with gateway(database_url, sessions, clock, ["m1"]) as (api, _world, ids):
        answer = await api.post(
            "/api/dlr", params={**CREDENTIALS, "message_id": "m1", "message_state": state}
        )
    assert answer.status_code == 200
    assert await statuses(sessions, ids) == [expected]


async def test_accepted_is_not_final(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock, ["m1"]) as (api, _world, ids):
        for state in ("accepted", "unknown", "delivered"):
            await api.post(
                "/api/dlr", params={**CREDENTIALS, "message_id": "m1", "message_state": state}
            )
            clock.advance(1)
    assert await statuses(sessions, ids) == ["delivered"]


async def test_duplicates_and_late_intermediate_reports_change_nothing(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock, ["m1"]) as (api, _world, ids):
        answers = []
        for state in ("delivered", "delivered", "enroute", "expired"):
            answers.append(
                await api.post(
                    "/api/dlr", params={**CREDENTIALS, "message_id": "m1", "message_state": state}
                )
            )
            clock.advance(5)
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["data"]["id"] for a in answers}) == 4  # every receipt is kept
    assert await statuses(sessions, ids) == ["delivered"]
    async with sessions() as session:
        events = await history_statuses(session)
        message = await session.get(Message, ids[0])
    assert events == ["sent", "delivered"]
    assert message is not None and message.status_detail == "supplier reported delivered"
    assert message.price == Decimal("0.02")


async def test_several_reports_of_one_message_in_one_request(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock, ["m1"]) as (api, _world, ids):
        answer = await api.post(
            "/api/dlr?_login=LOGIN&_password=PASSWORD&message_id=m1&message_state=delivered"
            "&message_id=m1&message_state=enroute"
        )
    assert len(answer.json()["data"]) == 2
    assert await statuses(sessions, ids) == ["delivered"]


# --- Unknown ids and early receipts --------------------------------------------------


async def test_unknown_message_id_is_kept_not_refused(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, world, ids):
        answer = await api.post(
            "/api/dlr?_login=LOGIN&_password=PASSWORD&message_id=never-issued"
            "&message_state=delivered&request_id=7"
        )
    [receipt] = await receipts(sessions)
    assert answer.json() == {"data": ok(receipt.id, "7")}
    assert (receipt.supplier_id, receipt.message_id) == (world.supplier_id, None)
    assert await statuses(sessions, ids) == ["sent", "sent"]


async def test_receipt_before_the_submit_answer_is_recorded_is_applied_later(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    [mid] = await accept_messages(sessions, clock, world)
    # The supplier took the message and answered "up-1" ...
    batch, outcomes = await claim_and_submit(sessions, clock, world, ["up-1"])
    async with api_client(database_url, clock) as api:
        # ... and its receipt arrives before the dispatcher has written that answer down.
        answer = await api.post(
            "/api/dlr?_login=LOGIN&_password=PASSWORD&message_id=up-1&message_state=delivered"
        )
        assert answer.status_code == 200
        assert await statuses(sessions, [mid]) == ["queued"]
        clock.advance(1)
        await record_submits(sessions, clock, world, batch, outcomes)
    assert await statuses(sessions, [mid]) == ["delivered"]
    [receipt] = await receipts(sessions)
    assert receipt.message_id == mid
    async with sessions() as session:
        events = await history_statuses(session)
    # The report's time is before the submit answer's; the history follows the statuses.
    assert events == ["sent", "delivered"]


# --- Refused requests ----------------------------------------------------------------


async def error_answer(api: httpx.AsyncClient, query: str) -> tuple[int, list[dict[str, Any]]]:
    answer = await api.post(f"/api/dlr?_login=LOGIN&_password=PASSWORD&{query}")
    assert answer.headers["content-type"] == JSON_API
    assert "data" not in answer.json()
    return answer.status_code, answer.json()["errors"]


async def test_missing_arguments(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, _ids):
        none = await error_answer(api, "request_id=1")
        no_state = await error_answer(api, "message_id=1561370632513")
    assert none == (
        400,
        [
            {
                "code": "missing_argument",
                "detail": "message_id is required",
                "title": "Missing argument",
                "source": {"parameter": "message_id"},
            },
            {
                "code": "missing_argument",
                "detail": "message_state is required",
                "title": "Missing argument",
                "source": {"parameter": "message_state"},
            },
        ],
    )
    assert no_state[0] == 400
    assert [e["source"] for e in no_state[1]] == [{"parameter": "message_state"}]


async def test_a_bad_triple_refuses_the_whole_request(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        status, errors = await error_answer(
            api,
            "message_id=1561370632513&message_state=delivered"
            "&message_id=1561370632522&message_state=seen"
            "&message_id=&message_state=delivered",
        )
    assert status == 400
    assert errors == [
        {
            "code": "invalid_argument",
            "detail": "message_state 'seen' is not one of enroute, accepted, unknown, delivered, "
            "expired, undeliverable, rejected",
            "title": "Invalid argument",
            "source": {"parameter": "message_state"},
            "meta": {"position": 1},
        },
        {
            "code": "invalid_argument",
            "detail": "message_id is empty",
            "title": "Invalid argument",
            "source": {"parameter": "message_id"},
            "meta": {"position": 2},
        },
    ]
    assert await receipts(sessions) == []
    assert await statuses(sessions, ids) == ["sent", "sent"]


async def test_mismatched_counts(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, _ids):
        states = await error_answer(
            api, "message_id=1561370632513&message_id=1561370632522&message_state=delivered"
        )
        request_ids = await error_answer(
            api,
            "message_id=1561370632513&message_state=delivered&request_id=1"
            "&message_id=1561370632522&message_state=delivered",
        )
    assert states[0] == 400 and [e["source"]["parameter"] for e in states[1]] == ["message_state"]
    assert request_ids[0] == 400
    assert [e["source"]["parameter"] for e in request_ids[1]] == ["request_id"]
    assert "meta" not in request_ids[1][0]
    assert await receipts(sessions) == []


async def test_arguments_are_judged_only_after_authentication(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, _ids):
        answer = await api.post("/api/dlr?_login=LOGIN&_password=nope&message_state=seen")
    assert (answer.status_code, answer.json()) == (401, SEED_AUTH_ERROR)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_argument"),
        (b'["a"]', "application/json", 400, "invalid_argument"),
        (b"<dlr/>", "application/xml", 415, "unsupported_media_type"),
        # A multipart body with no readable part holds no arguments at all.
        (b"--x\r\nbroken", "multipart/form-data; boundary=x", 400, "missing_argument"),
    ],
)
async def test_unreadable_bodies(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, _ids):
        answer = await api.post(
            "/api/dlr?_login=LOGIN&_password=PASSWORD",
            content=content,
            headers={"content-type": content_type},
        )
    assert answer.status_code == status
    assert {error["code"] for error in answer.json()["errors"]} == {code}


async def test_other_methods(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with gateway(database_url, sessions, clock) as (api, _world, _ids):
        answer = await api.put(SEED_ONE)
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"
    assert answer.json()["errors"][0]["code"] == "method_not_allowed"


async def test_a_real_fault_is_an_internal_error_and_stores_nothing(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tidings.delivery import reports
    from tidings.delivery.service import ingest_reports as original

    async def failing(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        await original(session, *args, **kwargs)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(reports, "ingest_reports", failing)
    async with gateway(database_url, sessions, clock) as (api, _world, ids):
        answer = await api.post(SEED_ONE)
    assert answer.status_code == 500
    assert answer.json() == {
        "errors": [
            {
                "code": "internal",
                "detail": "The receipts were not stored; please retry",
                "title": "Internal error",
            }
        ]
    }
    assert await receipts(sessions) == []
    assert await statuses(sessions, ids) == ["sent", "sent"]
    async with sessions() as session:
        assert len(await history_statuses(session)) == 2
