"""What fuzzing the documented APIs found, kept fixed: text holding NUL, which PostgreSQL text
columns refuse, reached queries and failed them with 500 (a failed build, for an export).
Each is now answered in its API's own format, on both databases."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import api_client, build_world, issue_dr_login, set_dlr_credentials
from tidings.clock import FrozenClock

Sessions = async_sessionmaker[AsyncSession]


async def test_dr_lookups_and_logins_with_nul_are_not_found_or_unauthorized(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    login, password = await issue_dr_login(sessions, clock, world.client_id)
    auth = httpx.BasicAuth(login, password)
    async with api_client(database_url, clock) as http:
        simple = await http.get(f"/{world.client_id}/api/dr/external/a%00b/simple", auth=auth)
        advanced = await http.get(f"/{world.client_id}/api/dr/external/a%00/advanced", auth=auth)
        nul_login = await http.get(
            f"/{world.client_id}/api/dr/1/simple", auth=httpx.BasicAuth(login + "\x00", password)
        )
    for answer in (simple, advanced):
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"
    assert nul_login.status_code == 401
    assert nul_login.json()["error"] == "unauthorized"
    assert "WWW-Authenticate" in nul_login.headers


async def test_dlr_arguments_with_nul_are_invalid_arguments(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    login = {"_login": "LOGIN", "_password": "PASSWORD"}
    async with api_client(database_url, clock) as http:
        bad_id = await http.post(
            "/api/dlr", data={**login, "message_id": "a\x00b", "message_state": "delivered"}
        )
        bad_request_id = await http.post(
            "/api/dlr",
            data={**login, "message_id": "ab", "message_state": "delivered", "request_id": "\x00"},
        )
        bad_login = await http.post(
            "/api/dlr",
            data={"_login": "LOG\x00IN", "_password": "PASSWORD", "message_id": "ab"}
            | {"message_state": "delivered"},
        )
        fine = await http.post(
            "/api/dlr", data={**login, "message_id": "ab", "message_state": "delivered"}
        )
    assert bad_id.status_code == 400
    assert bad_id.json()["errors"] == [
        {
            "code": "invalid_argument",
            "detail": "message_id contains NUL",
            "title": "Invalid argument",
            "source": {"parameter": "message_id"},
            "meta": {"position": 0},
        }
    ]
    assert bad_request_id.status_code == 400
    assert bad_request_id.json()["errors"][0]["source"] == {"parameter": "request_id"}
    assert bad_login.status_code == 401
    assert bad_login.json()["errors"][0]["code"] == "authentication"
    assert fine.status_code == 200


async def test_export_filters_with_nul_are_error_7(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    window = {"time_in_from": "2026-03-01", "time_in_to": "2026-03-02"}
    async with api_client(database_url, clock) as http:
        key = {"X-API-KEY": world.live_key}
        originator = await http.post(
            "/rest/stat/create", json={**window, "originator": "a\x00"}, headers=key
        )
        operator = await http.post(
            "/rest/stat/create",
            json={**window, "country_name": "Ukraine", "operator_id": "x\x00"},
            headers=key,
        )
    for answer in (originator, operator):
        assert answer.status_code == 400
        assert answer.json()["error"] == "7"
