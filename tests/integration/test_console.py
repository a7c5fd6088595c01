"""The operator console over HTTP (in-process ASGI), on SQLite and PostgreSQL: sign-in,
CSRF, and what the pages show for messages written through the real services."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import accept_messages, api_client, build_world, send_all
from tidings.accounts.models import Client
from tidings.api.app import create_app
from tidings.clock import FrozenClock
from tidings.config import Settings
from tidings.db.engine import transaction
from tidings.messages.changes import StatusChange
from tidings.messages.service import apply_changes
from tidings.messages.status import Status
from tidings.operators.service import create_operator, delete_operator, set_operator_password

PASSWORD = "correct horse battery"


@dataclass
class Scene:
    http: httpx.AsyncClient
    message_ids: list[int]
    client_id: int


async def _write_traffic(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> tuple[list[int], int]:
    """Four messages: delivered, undelivered (with a reason), rejected, still en route."""
    world = await build_world(sessions, clock)
    async with transaction(sessions) as session:
        await session.execute(
            update(Client)
            .where(Client.id == world.client_id)
            .values(callback_url="http://127.0.0.1:9/hook")
        )
    ids = await accept_messages(sessions, clock, world, 4)
    clock.advance(2)
    await send_all(sessions, clock, world, ["s0", "s1", "s2", "s3"])
    clock.advance(3)
    async with transaction(sessions) as session:
        await apply_changes(
            session,
            clock,
            [
                StatusChange(ids[0], Status.DELIVERED, clock.now()),
                StatusChange(ids[1], Status.UNDELIVERED, clock.now(), detail="absent subscriber"),
                StatusChange(ids[2], Status.REJECTED, clock.now(), detail="blocked by carrier"),
            ],
        )
    clock.advance(1)
    return ids, world.client_id


@pytest.fixture
async def scene(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> AsyncIterator[Scene]:
    ids, client_id = await _write_traffic(sessions, clock)
    async with api_client(database_url, clock) as http:
        yield Scene(http, ids, client_id)


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name} field"
    return found.group(1)


async def _sign_in(http: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    form = await http.get("/console/login")
    return await http.post(
        "/console/login",
        data={
            "csrf": _hidden(form.text, "csrf"),
            "next": "/console",
            "name": name,
            "password": password,
        },
    )


async def _operator(sessions: async_sessionmaker[AsyncSession], clock: FrozenClock) -> None:
    async with transaction(sessions) as session:
        await create_operator(session, clock, name="olga", password=PASSWORD)


def _chart(page: str, chart_id: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', page)
    assert found, f"no data for {chart_id}"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _series_total(chart: dict[str, Any], label: str) -> float:
    return sum(sum(s["values"]) for s in chart["series"] if s["label"] == label)


async def test_without_operators_nobody_gets_in(scene: Scene) -> None:
    page = await scene.http.get("/console")
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console"
    login = await scene.http.get("/console/login")
    assert login.status_code == 401
    assert "tidings operators create --name" in login.text
    refused = await _sign_in(scene.http, "olga", PASSWORD)
    assert refused.status_code == 401
    assert (await scene.http.get("/console/api/live")).status_code == 401


async def test_sign_in_requires_the_forms_token_and_the_right_password(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    wrong = await _sign_in(scene.http, "olga", "not the password")
    assert wrong.status_code == 401
    assert "wrong operator name or password" in wrong.text
    unknown = await _sign_in(scene.http, "nobody", PASSWORD)
    assert unknown.status_code == 401
    # A cross-site form post cannot read the form's token, so it does not match the cookie.
    forged = await scene.http.post(
        "/console/login", data={"csrf": "forged", "name": "olga", "password": PASSWORD}
    )
    assert forged.status_code == 403
    assert "tidings_console" not in forged.cookies
    ok = await _sign_in(scene.http, "olga", PASSWORD)
    assert ok.status_code == 303
    assert ok.headers["location"] == "/console"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "Path=/console" in cookie
    assert "SameSite=lax" in cookie
    assert (await scene.http.get("/console")).status_code == 200


async def test_wrong_passwords_slow_that_address_down_but_never_lock_the_operator_out(
    database_url: str, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    app = create_app(Settings(database_url=database_url, cache_ttl=0), clock=clock)
    async with app.router.lifespan_context(app):

        def from_address(host: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(host, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://tidings")

        async with from_address("203.0.113.7") as stranger, from_address("10.0.0.5") as olga:
            for _ in range(5):  # the first failures cost nothing
                assert (await _sign_in(stranger, "olga", "a wrong guess")).status_code == 401
            # From then on each failure doubles the wait: 1 s, 2 s, 4 s, ...
            waits = []
            for _ in range(6):
                slowed = await _sign_in(stranger, "olga", PASSWORD)
                assert slowed.status_code == 429
                assert "Too many failed sign-ins" in slowed.text
                wait = int(slowed.headers["retry-after"])
                waits.append(wait)
                clock.advance(wait)
                assert (await _sign_in(stranger, "olga", "a wrong guess")).status_code == 401
            assert waits == [1, 2, 4, 8, 16, 32]
            # Meanwhile the operator, from her own address, signs in at once.
            assert (await _sign_in(olga, "olga", PASSWORD)).status_code == 303
            # The stranger's wait is capped, and forgotten an hour after the last failure.
            clock.advance(3600)
            assert (await _sign_in(stranger, "olga", PASSWORD)).status_code == 303


async def test_logout_rejects_a_forged_post(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    await _sign_in(scene.http, "olga", PASSWORD)
    page = await scene.http.get("/console")
    forged = await scene.http.post("/console/logout", data={"csrf": "guess"})
    assert forged.status_code == 403
    assert (await scene.http.get("/console")).status_code == 200  # still signed in
    out = await scene.http.post("/console/logout", data={"csrf": _hidden(page.text, "csrf")})
    assert out.status_code == 303
    scene.http.cookies.clear()
    assert (await scene.http.get("/console")).status_code == 303


async def test_a_deleted_operator_or_a_changed_password_ends_the_session(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    await _sign_in(scene.http, "olga", PASSWORD)
    assert (await scene.http.get("/console/clients")).status_code == 200
    async with transaction(sessions) as session:
        await set_operator_password(session, "olga", "another long password")
    assert (await scene.http.get("/console/clients")).status_code == 303
    await _sign_in(scene.http, "olga", "another long password")
    assert (await scene.http.get("/console/clients")).status_code == 200
    async with transaction(sessions) as session:
        await delete_operator(session, "olga")
    assert (await scene.http.get("/console/clients")).status_code == 303


async def test_sessions_expire(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    await _sign_in(scene.http, "olga", PASSWORD)
    clock.advance(timedelta(hours=12, seconds=1).total_seconds())
    assert (await scene.http.get("/console")).status_code == 303


async def test_overview_shows_traffic_rates_queues_and_failures(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    await _sign_in(scene.http, "olga", PASSWORD)
    page = await scene.http.get("/console")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    hour = _chart(page.text, "chart-hour")
    assert len(hour["x"]) == 60
    assert _series_total(hour, "accepted") == 4
    assert _series_total(hour, "sent") == 4
    assert _series_total(hour, "delivered") == 1
    assert _series_total(hour, "undelivered") == 1
    assert _series_total(hour, "rejected") == 1
    day = _chart(page.text, "chart-day")
    assert len(day["x"]) == 144
    # 10-minute buckets shown as a per-minute average.
    assert _series_total(day, "accepted") == pytest.approx(0.4)
    # Failures, newest first, with their reasons and links to their messages.
    failures = page.text.split('id="failures"')[1].split("</table>")[0]
    assert "absent subscriber" in failures
    assert "blocked by carrier" in failures
    assert f"/console/messages/{scene.message_ids[1]}" in failures
    assert f"/console/messages/{scene.message_ids[0]}" not in failures
    # One delivered out of three final: 33.3 %, for the supplier and for Ukraine.
    rates = page.text.split('id="rates-supplier"')[1].split("</table>")[0]
    assert "sim-acme" in rates
    assert "33.3 %" in rates
    countries = page.text.split('id="rates-country"')[1].split("</table>")[0]
    assert "UA" in countries and "Ukraine" in countries
    assert "33.3 %" in countries
    # Seven status changes (four sent, three final) wrote webhook deliveries for the
    # client's URL; no webhook worker runs here, so all seven are due.
    assert 'data-queue="webhooks_due">7<' in page.text
    live = (await scene.http.get("/console/api/live")).json()
    assert live["queues"]["webhooks_due"] == 7
    assert live["queues"]["dispatch_due"] == 0
    assert sum(live["hour"]["series"][0]["values"]) == 4


async def test_charts_keep_counting_as_time_passes(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    """Finished buckets are kept in memory; open ones are read again on every view."""
    await _operator(sessions, clock)
    await _sign_in(scene.http, "olga", PASSWORD)
    first = _chart((await scene.http.get("/console")).text, "chart-day")
    assert _series_total(first, "accepted") == pytest.approx(0.4)
    world = await build_world(sessions, clock, name="bravo")
    await accept_messages(sessions, clock, world, 3)
    live = (await scene.http.get("/console/api/live")).json()
    assert sum(sum(s["values"]) for s in live["hour"]["series"] if s["label"] == "accepted") == 7
    clock.advance(30 * 60)  # the first messages' buckets are over now, and kept
    for _ in range(2):
        day = _chart((await scene.http.get("/console")).text, "chart-day")
        assert _series_total(day, "accepted") == pytest.approx(0.7)
        assert _series_total(day, "delivered") == pytest.approx(0.1)


async def test_delivery_rate_windows(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    await _sign_in(scene.http, "olga", PASSWORD)
    clock.advance(2 * 3600)
    recent = await scene.http.get("/console", params={"window": "1h"})
    rates = recent.text.split('id="rates-supplier"')[1].split("</table>")[0]
    assert "No final statuses in this window." in rates
    day = await scene.http.get("/console", params={"window": "24h"})
    assert "33.3 %" in day.text.split('id="rates-supplier"')[1].split("</table>")[0]


async def test_client_page_and_search_lead_to_a_messages_history(
    scene: Scene, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await _operator(sessions, clock)
    await _sign_in(scene.http, "olga", PASSWORD)
    clients = await scene.http.get("/console/clients")
    assert f"/console/clients/{scene.client_id}" in clients.text
    client = await scene.http.get(f"/console/clients/{scene.client_id}")
    assert client.status_code == 200
    assert "9.920000" in client.text  # 10 EUR less four messages at 0.02
    traffic = _chart(client.text, "chart-client")
    assert _series_total(traffic, "delivered") == 1
    assert _series_total(traffic, "sent") == 1
    assert "http://127.0.0.1:9/hook" in client.text  # the webhook log
    undelivered = scene.message_ids[1]
    by_reference = await scene.http.get("/console/messages", params={"q": "ref1"})
    assert by_reference.status_code == 303
    assert by_reference.headers["location"] == f"/console/messages/{undelivered}"
    by_id = await scene.http.get("/console/messages", params={"q": str(undelivered)})
    assert by_id.headers["location"] == f"/console/messages/{undelivered}"
    by_phone = await scene.http.get("/console/messages", params={"q": "+380 97 100 0001"})
    assert by_phone.headers["location"] == f"/console/messages/{undelivered}"
    none = await scene.http.get("/console/messages", params={"q": "no-such-ref"})
    assert "No message matches" in none.text
    history = await scene.http.get(f"/console/messages/{undelivered}")
    steps = re.findall(r"<b>(\w+)</b> <time>", history.text)
    assert steps == ["accepted", "sent", "undelivered"]
    assert "absent subscriber" in history.text
    assert "+2.000 s" in history.text and "+3.000 s" in history.text
    for path in ("messages/999999", "messages/99999999999", "messages/x", "clients/99999999999"):
        missing = await scene.http.get(f"/console/{path}")
        assert missing.status_code == 404, path
    # Digits beyond any id's range are still a phone number to search for.
    by_digits = await scene.http.get("/console/messages", params={"q": "380971000001"})
    assert by_digits.headers["location"] == f"/console/messages/{undelivered}"


async def test_assets_are_served_from_the_package(scene: Scene) -> None:
    script = await scene.http.get("/console/static/uPlot.iife.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"uPlot" in script.content
    assert (await scene.http.get("/console/static/../config.py")).status_code == 404
    assert (await scene.http.get("/console/static/nothing.js")).status_code == 404
