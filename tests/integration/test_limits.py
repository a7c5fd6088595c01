"""Request limits over HTTP, on SQLite and PostgreSQL: body size (413) and request rate (429),
each in the format of the API that refuses, with the clock moved instead of waited for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import api_client, build_world, issue_dr_login, set_dlr_credentials
from tidings.clock import FrozenClock

Sessions = async_sessionmaker[AsyncSession]

LIMIT = 4096
SMS = {
    "destination": "phone",
    "msisdn": "380972000000",
    "reference": "size1",
    "originator": "test",
    "body": "x",
}


def _oversized_sms() -> bytes:
    return orjson.dumps({**SMS, "body": "x" * (LIMIT + 1)})


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _dlr_form(count: int) -> Iterator[tuple[str, str]]:
    yield "_login", "LOGIN"
    yield "_password", "PASSWORD"
    for number in range(count):
        yield "message_id", f"m{number}"
        yield "message_state", "delivered"


# --- Body size ---------------------------------------------------------------------------------


async def test_an_oversized_client_request_is_refused_with_413_and_seed_error_12(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock, settings={"max_request_bytes": LIMIT}) as http:
        headers = {"X-API-KEY": world.live_key, "Content-Type": "application/json"}
        declared = await http.post("/rest/sms/create", content=_oversized_sms(), headers=headers)
        chunked = await http.post(
            "/rest/sms/create", content=_chunks(_oversized_sms()), headers=headers
        )
        fits = await http.post("/rest/sms/create", json=SMS, headers=headers)
    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["error"] == "12"
        assert f"larger than {LIMIT} bytes" in body["errorDescription"]
    assert "Content-Length" not in chunked.request.headers  # really sent without a length
    assert fits.status_code == 200, fits.text
    assert fits.json()["error"] == "0"


async def test_an_oversized_dlr_request_is_refused_with_jsonapi_errors(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    async with api_client(database_url, clock, settings={"max_request_bytes": LIMIT}) as http:
        big = await http.post("/api/dlr", data=dict(_dlr_form(1)) | {"pad": "p" * LIMIT})
        small = await http.post("/api/dlr", data=dict(_dlr_form(1)))
    assert big.status_code == 413
    assert big.headers["content-type"] == "application/vnd.api+json"
    assert big.json() == {
        "errors": [
            {
                "code": "payload_too_large",
                "detail": f"the request body is larger than {LIMIT} bytes",
                "title": "Payload too large",
            }
        ]
    }
    assert small.status_code == 200, small.text


async def test_an_oversized_dr_request_is_refused_in_the_dr_format(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    async with api_client(database_url, clock, settings={"max_request_bytes": LIMIT}) as http:
        answer = await http.request(
            "GET", f"/{world.client_id}/api/dr/1/simple", content=b"x" * (LIMIT + 1)
        )
    assert answer.status_code == 413
    assert answer.json() == {
        "error": "too_large",
        "detail": f"the request body is larger than {LIMIT} bytes",
    }


# --- Request rate ------------------------------------------------------------------------------


async def test_a_client_over_its_rate_gets_429_and_recovers_after_the_wait(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    # 2 requests a second, a bucket of 2: the third request at once is refused.
    limits = {"rate_limit": 2, "rate_burst_seconds": 1}
    async with api_client(database_url, clock, settings=limits) as http:
        key = {"X-API-KEY": world.live_key}
        first = [await http.get("/rest/sms/prices", headers=key) for _ in range(2)]
        refused = await http.get("/rest/sms/prices", headers=key)
        test_key = await http.get("/rest/stat/list", headers={"X-API-KEY": world.test_key})
        wrong_keys = [
            await http.get("/rest/sms/prices", headers={"X-API-KEY": "no"}) for _ in range(3)
        ]
        clock.advance(0.4)  # 0.8 of a token: still refused, and told to wait
        early = await http.get("/rest/sms/prices", headers=key)
        clock.advance(0.2)
        again = await http.get("/rest/sms/prices", headers=key)
        refused_again = await http.get("/sms/reference/x", headers=key)
    assert [a.status_code for a in first] == [200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"] == "11"
    assert "2 requests a second" in refused.json()["errorDescription"]
    assert refused.headers["retry-after"] == "1"
    # The test key is the same client: the same bucket, and the statistics API's format.
    assert test_key.status_code == 429
    assert test_key.json()["error"] == "11"
    assert test_key.headers["retry-after"] == "1"
    # Unknown keys are not anyone's requests: they get error 1, never 429.
    assert {a.status_code for a in wrong_keys} == {401}
    assert early.status_code == 429
    assert again.status_code == 200, again.text
    assert refused_again.status_code == 429


async def test_a_client_override_replaces_the_default_rate(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    other = await build_world(sessions, clock, name="other")
    limits = {
        "rate_limit": 1,
        "rate_burst_seconds": 1,
        "client_rate_limits": {world.client_id: 0},  # 0: this client has no limit
    }
    async with api_client(database_url, clock, settings=limits) as http:
        free = [
            await http.get("/rest/sms/prices", headers={"X-API-KEY": world.live_key})
            for _ in range(20)
        ]
        limited = [
            await http.get("/rest/sms/prices", headers={"X-API-KEY": other.live_key})
            for _ in range(2)
        ]
    assert {a.status_code for a in free} == {200}
    assert [a.status_code for a in limited] == [200, 429]


async def test_dr_queries_share_the_clients_bucket_and_answer_dr_errors(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    login, password = await issue_dr_login(sessions, clock, world.client_id)
    limits = {"rate_limit": 1, "rate_burst_seconds": 1}
    async with api_client(database_url, clock, settings=limits) as http:
        spent = await http.get("/rest/sms/prices", headers={"X-API-KEY": world.live_key})
        refused = await http.get(
            f"/{world.client_id}/api/dr/1/simple", auth=httpx.BasicAuth(login, password)
        )
        clock.advance(1)
        allowed = await http.get(
            f"/{world.client_id}/api/dr/1/simple", auth=httpx.BasicAuth(login, password)
        )
    assert spent.status_code == 200
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert refused.headers["retry-after"] == "1"
    assert allowed.status_code == 404  # past the limit: the lookup itself runs
    assert allowed.json()["error"] == "not_found"


async def test_a_supplier_over_its_dlr_rate_gets_jsonapi_429(
    database_url: str, sessions: Sessions, clock: FrozenClock
) -> None:
    world = await build_world(sessions, clock)
    await set_dlr_credentials(sessions, world.supplier_id, "LOGIN", "PASSWORD")
    limits = {"supplier_rate_limit": 1, "rate_burst_seconds": 2}  # a bucket of 2
    async with api_client(database_url, clock, settings=limits) as http:
        answers = [await http.post("/api/dlr", data=dict(_dlr_form(1))) for _ in range(3)]
        clock.advance(1)
        recovered = await http.post("/api/dlr", data=dict(_dlr_form(1)))
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["content-type"] == "application/vnd.api+json"
    assert refused.headers["retry-after"] == "1"
    [problem] = refused.json()["errors"]
    assert problem["code"] == "rate_limited"
    assert problem["title"] == "Too many requests"
    assert recovered.status_code == 200
