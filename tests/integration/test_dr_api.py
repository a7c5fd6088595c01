"""The seed-000 delivery-report query API on each database, for messages in every state."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import (
    World,
    accept_messages,
    api_client,
    build_world,
    issue_dr_login,
    send_all,
)
from tidings.accounts.models import Client
from tidings.clock import FrozenClock
from tidings.connectors.base import SupplierReport
from tidings.db.engine import transaction
from tidings.delivery.service import ingest_reports, sweep_expired
from tidings.messages.status import Status

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def basic(login: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Dr:
    """A client of the DR API with its credentials."""

    def __init__(self, api: httpx.AsyncClient, world: World, headers: dict[str, str]) -> None:
        self.api = api
        self.world = world
        self.headers = headers

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.api.get(path, headers=self.headers if headers is None else headers)

    async def report(self, message_id: int, kind: str = "simple") -> dict[str, Any]:
        answer = await self.get(f"/{self.world.client_id}/api/dr/{message_id}/{kind}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        body: dict[str, Any] = answer.json()
        return body


@asynccontextmanager
async def dr_api(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> AsyncIterator[Dr]:
    world = await build_world(sessions, clock)
    login, password = await issue_dr_login(sessions, clock, world.client_id)
    async with api_client(database_url, clock) as api:
        yield Dr(api, world, basic(login, password))


async def report(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    world: World,
    supplier_id: str,
    status: Status,
) -> None:
    async with transaction(sessions) as session:
        await ingest_reports(
            session, clock, world.supplier_id, [SupplierReport(supplier_id, status, clock.now())]
        )


def simple(message_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "phone_number": "380971000000",
        "last_partner": "sms",
        "message_id": str(message_id),
        "extra_id": "ref0",
        "time": ms(START),
        "status": -1,
        "substatus": 11,
        "hyber_status": 11001,
        "total_sms_parts": 1,
        "delivered_sms_parts": 0,
    }
    body.update(fields)
    return body


# --- Reports for each state ----------------------------------------------------------


async def test_queued_message(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        assert await dr.report(mid) == simple(mid, last_partner="hyber")
        assert await dr.report(mid, "advanced") == {
            "reports": [
                {
                    "phone_number": "380971000000",
                    "message_id": str(mid),
                    "extra_id": "ref0",
                    "time": ms(START),
                    "last_partner": "hyber",
                    "status": -1,
                    "substatus": 11,
                    "hyber_status": 11001,
                    "total_sms_parts": 1,
                    "delivered_sms_parts": 0,
                }
            ],
            "started": False,
            "processing": True,
            "delivered_via": None,
            "channels": [{"channel": "sms", "ttl": 72 * 3600}],
        }


async def test_sent_message(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world, validity_hours=1)
        sent_at = clock.advance(2)
        await send_all(sessions, clock, dr.world, ["up-1"])
        assert await dr.report(mid) == simple(
            mid, time=ms(sent_at), substatus=12, hyber_status=12011
        )
        advanced = await dr.report(mid, "advanced")
    assert (advanced["started"], advanced["processing"], advanced["delivered_via"]) == (
        True,
        True,
        None,
    )
    assert advanced["channels"] == [{"channel": "sms", "ttl": 3600}]


async def test_unknown_status(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        await send_all(sessions, clock, dr.world, ["up-1"])
        lost_at = clock.advance(7)
        await report(sessions, clock, dr.world, "up-1", Status.UNKNOWN)
        assert await dr.report(mid) == simple(
            mid, time=ms(lost_at), substatus=13, hyber_status=13011
        )


async def test_delivered_message_matches_the_seed_example(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        clock.advance(1)
        await send_all(sessions, clock, dr.world, ["up-1"])
        delivered_at = clock.advance(3.5)
        await report(sessions, clock, dr.world, "up-1", Status.DELIVERED)
        expected = simple(
            mid,
            time=ms(delivered_at),
            status=2,
            substatus=23,
            hyber_status=23011,
            delivered_sms_parts=1,
        )
        assert await dr.report(mid) == expected
        assert await dr.report(mid, "advanced") == {
            "reports": [expected],
            "started": True,
            "processing": False,
            "delivered_via": "sms",
            "channels": [{"channel": "sms", "ttl": 72 * 3600}],
        }
        # The same keys, in the seed's order.
        assert list(await dr.report(mid)) == [
            "phone_number",
            "last_partner",
            "message_id",
            "extra_id",
            "time",
            "status",
            "substatus",
            "hyber_status",
            "total_sms_parts",
            "delivered_sms_parts",
        ]


async def test_long_message_counts_its_parts(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world, body="x" * 200)
        assert (await dr.report(mid))["total_sms_parts"] == 2
        await send_all(sessions, clock, dr.world, ["up-1"])
        await report(sessions, clock, dr.world, "up-1", Status.DELIVERED)
        body = await dr.report(mid)
    assert (body["total_sms_parts"], body["delivered_sms_parts"]) == (2, 2)


async def test_expired_after_sending(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        await send_all(sessions, clock, dr.world, ["up-1"])
        expired_at = clock.advance(60)
        await report(sessions, clock, dr.world, "up-1", Status.EXPIRED)
        assert await dr.report(mid) == simple(
            mid, time=ms(expired_at), status=3, substatus=35, hyber_status=35015
        )
        advanced = await dr.report(mid, "advanced")
    assert (advanced["started"], advanced["processing"], advanced["delivered_via"]) == (
        True,
        False,
        None,
    )


async def test_expired_before_sending_stays_on_the_platform(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world, validity_hours=1)
        expired_at = clock.advance(3601)
        async with transaction(sessions) as session:
            await sweep_expired(session, clock, grace_seconds=0)
        assert await dr.report(mid) == simple(
            mid,
            last_partner="hyber",
            time=ms(expired_at),
            status=3,
            substatus=35,
            hyber_status=35015,
        )
        advanced = await dr.report(mid, "advanced")
    assert (advanced["started"], advanced["processing"]) == (False, False)


@pytest.mark.parametrize(
    ("status", "codes"),
    [(Status.UNDELIVERED, (3, 34, 34011)), (Status.REJECTED, (3, 33, 33011))],
)
async def test_other_final_statuses(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    status: Status,
    codes: tuple[int, int, int],
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        await send_all(sessions, clock, dr.world, ["up-1"])
        await report(sessions, clock, dr.world, "up-1", status)
        body = await dr.report(mid)
    assert (body["status"], body["substatus"], body["hyber_status"]) == codes
    assert body["last_partner"] == "sms"


# --- By extra_id ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["simple", "advanced"])
async def test_by_extra_id(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, kind: str
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        first, second = await accept_messages(sessions, clock, dr.world, 2)
        by_ref = await dr.get(f"/{dr.world.client_id}/api/dr/external/ref1/{kind}")
        by_id = await dr.report(second, kind)
        missing = await dr.get(f"/{dr.world.client_id}/api/dr/external/ref9/{kind}")
    assert by_ref.status_code == 200 and by_ref.json() == by_id
    assert (by_id["extra_id"] if kind == "simple" else by_id["reports"][0]["extra_id"]) == "ref1"
    assert first != second
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no message with reference 'ref9'"}


# --- What a client may see -----------------------------------------------------------


async def test_another_clients_message_is_not_visible(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        other = await build_world(sessions, clock, name="other")
        [theirs] = await accept_messages(sessions, clock, other)
        by_id = await dr.get(f"/{dr.world.client_id}/api/dr/{theirs}/simple")
        by_ref = await dr.get(f"/{dr.world.client_id}/api/dr/external/ref0/advanced")
        [mine] = await accept_messages(sessions, clock, dr.world, first_phone=380971000001)
        own = await dr.get(f"/{dr.world.client_id}/api/dr/external/ref0/simple")
    assert (by_id.status_code, by_id.json()) == (
        404,
        {"error": "not_found", "detail": f"no message {theirs}"},
    )
    assert by_ref.status_code == 404
    assert own.status_code == 200 and own.json()["message_id"] == str(mine)


@pytest.mark.parametrize("path_id", ["other", "999", "abc"])
async def test_the_path_must_name_the_authenticated_client(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, path_id: str
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        other = await build_world(sessions, clock, name="other")
        [mid] = await accept_messages(sessions, clock, dr.world)
        client_id = str(other.client_id) if path_id == "other" else path_id
        answer = await dr.get(f"/{client_id}/api/dr/{mid}/simple")
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "forbidden",
        "detail": f"these credentials are not client {client_id}'s",
    }


@pytest.mark.parametrize("message_id", ["0", "12345", "abc", "99999999999", "٣", "1" * 5000])
async def test_unknown_message_ids(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    message_id: str,
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        answer = await dr.get(f"/{dr.world.client_id}/api/dr/{message_id}/advanced")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


# --- Credentials ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()},
        basic("nobody", "secret"),
        basic("", ""),
    ],
)
async def test_bad_credentials(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    headers: dict[str, str],
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        answer = await dr.get(f"/{dr.world.client_id}/api/dr/{mid}/simple", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Basic realm="Tidings')
    assert answer.json()["error"] == "unauthorized"


async def test_wrong_password_and_replaced_credentials(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        path = f"/{dr.world.client_id}/api/dr/{mid}/simple"
        old = dr.headers
        login, password = await issue_dr_login(sessions, clock, dr.world.client_id)
        assert (await dr.get(path, headers=old)).status_code == 401
        assert (await dr.get(path, headers=basic(login, password + "x"))).status_code == 401
        assert (await dr.get(path, headers=basic(login, password))).status_code == 200


async def test_client_without_dr_credentials_cannot_log_in(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock) as api:
        answer = await api.get(f"/{world.client_id}/api/dr/1/simple", headers=basic("", "x"))
    assert answer.status_code == 401


async def test_blocked_client(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with dr_api(database_url, sessions, clock) as dr:
        [mid] = await accept_messages(sessions, clock, dr.world)
        async with transaction(sessions) as session:
            client = await session.get(Client, dr.world.client_id)
            assert client is not None
            client.blocked = True
        answer = await dr.get(f"/{dr.world.client_id}/api/dr/{mid}/simple")
    assert (answer.status_code, answer.json()["error"]) == (403, "blocked")
