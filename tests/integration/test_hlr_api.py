"""Seed 004's HLR API on each database: the seed's examples, every HLR error code, billing,
test keys. Requests are multipart forms, as the seed insists, unless a test says otherwise.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from tests.hlr_support import balance_of, build_hlr_world, lookups
from tests.support import api_client
from tidings.billing.models import LedgerEntry
from tidings.clock import FrozenClock


def form(**fields: Any) -> dict[str, Any]:
    """Fields as multipart/form-data parts (httpx sends `files` as multipart)."""
    return {"files": {name: (None, str(value)) for name, value in fields.items()}}


def bulk(items: list[dict[str, Any]]) -> dict[str, Any]:
    return form(payload=orjson.dumps(items).decode())


async def create(client: httpx.AsyncClient, key: str, **request: Any) -> httpx.Response:
    return await client.put("/hlr/create", headers={"X-API-KEY": key}, **request)


# --- The seed's examples ----------------------------------------------------------------------


async def test_seed_single_request(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        response = await create(
            client,
            world.live_key,
            **form(
                msisdn="380505142320",
                reference="sendHLR0407",
                tariff=9,
                callback_url="https://somelink.com/hlr",
            ),
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"error", "id", "price", "currency"}
        assert (body["error"], body["price"], body["currency"]) == ("0", "0.002", "EUR")
        [stored] = await lookups(client_sessions(client))
        assert str(stored.id) == body["id"]
        assert (stored.msisdn, stored.reference, stored.tariff) == (
            "380505142320",
            "sendHLR0407",
            9,
        )
        assert stored.callback_url == "https://somelink.com/hlr"
        assert stored.status == "sent"


async def test_seed_bulk_request(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        response = await client.post(
            "/rest/hlr/create",
            headers={"X-API-KEY": world.live_key},
            **bulk(
                [
                    {
                        "msisdn": "380972920000",
                        "reference": "extid13423now",
                        "tariff": 9,
                        "callback_url": "http://someurl.com/callback/?id=12345",
                    },
                    {
                        "msisdn": "380972920001",
                        "reference": "extid13425",
                        "tariff": 9,
                        "callback_url": "http://someurl.com/callback/?id=12346",
                    },
                ]
            ),
        )
        body = response.json()
        assert response.status_code == 200
        assert body["error"] == "0" and body["totalprice"] == "0.004" and body["currency"] == "EUR"
        assert [
            (r["reference"], r["error"], r["price"], r["currency"]) for r in body["result"]
        ] == [
            ("extid13423now", "0", "0.002", "EUR"),
            ("extid13425", "0", "0.002", "EUR"),
        ]
        stored = await lookups(client_sessions(client))
        assert [str(s.id) for s in stored] == [r["id"] for r in body["result"]]
        assert await balance_of(client_sessions(client), world.client_id) == Decimal("9.996")


async def test_seed_bulk_with_a_reference_that_exists(
    database_url: str, clock: FrozenClock
) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        first = await create(
            client, world.live_key, **form(msisdn="380972920000", reference="extid13423now")
        )
        existing_id = first.json()["id"]
        response = await create(
            client,
            world.live_key,
            **bulk(
                [
                    {"msisdn": "380972920000", "reference": "extid13423now", "tariff": 9},
                    {"msisdn": "380972920001", "reference": "extid13425", "tariff": 9},
                ]
            ),
        )
        body = response.json()
        assert response.status_code == 200
        assert body["result"][0] == {
            "reference": "extid13423now",
            "id": existing_id,
            "error": "63",
            "errorDescription": "HLR already exists",
        }
        assert body["result"][1]["error"] == "0" and body["result"][1]["price"] == "0.002"
        assert (body["error"], body["totalprice"], body["currency"]) == ("0", "0.002", "EUR")
        assert len(await lookups(client_sessions(client))) == 2
        # Charged for the first request and the one new lookup only.
        assert await balance_of(client_sessions(client), world.client_id) == Decimal("9.996")


async def test_seed_invalid_payload_creates_nothing(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        response = await create(
            client,
            world.live_key,
            **bulk([{"msisdn": "380972920000", "reference": "good1"}, {"reference": "nomsisdn"}]),
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "64",
            "errorDescription": "Incorrect payload: payload[1]: missing msisdn",
        }
        assert await lookups(client_sessions(client)) == []
        assert await balance_of(client_sessions(client), world.client_id) == Decimal(10)


async def test_seed_result_and_not_found(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        created = (
            await create(client, world.live_key, **form(msisdn="380932990000", reference="1234567"))
        ).json()
        headers = {"X-API-KEY": world.live_key}
        expected = {
            "id": created["id"],
            "reference": "1234567",
            "msisdn": "380932990000",
            "network": "unknown",
            "status": "sent",
            "details": {"ported": "0", "roaming": "0"},
            "createdDatetime": "2026-03-01T12:00:00+00:00",
            "statusDatetime": "2026-03-01T12:00:00+00:00",
        }
        for path in (
            f"/hlr/{created['id']}",
            f"/rest/hlr/{created['id']}",
            "/hlr/reference/1234567",
            "/rest/hlr/reference/1234567",
        ):
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, path
            assert response.json() == expected, path
        for path in ("/hlr/999999", "/hlr/reference/nosuch", "/rest/hlr/reference/bad-ref!"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 404, path
            assert response.json()["error"] == "60", path
            assert response.json()["errorDescription"].startswith("HLR not found")


async def test_seed_price_table(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        headers = {"X-API-KEY": world.live_key}
        default = await client.get("/hlr/prices", headers=headers)
        nine = await client.get("/rest/hlr/prices/9", headers=headers)
        assert default.json() == nine.json()
        assert nine.json() == {
            "error": "0",
            "prices": [
                {
                    "type": "hlr",
                    "country": "UA",
                    "country_name": "Ukraine",
                    "mcc": "255",
                    "price": "0.002",
                    "currency": "EUR",
                }
            ],
        }
        for tariff in ("10", "x", "-1"):
            response = await client.get(f"/hlr/prices/{tariff}", headers=headers)
            assert response.json()["error"] == "6", tariff
        assert (await client.get("/hlr/prices/3", headers=headers)).json()["error"] == "6"


# --- Every HLR error code ---------------------------------------------------------------------

CASES = [
    # (request, code): single form, then bulk
    (form(msisdn="12", reference="r1"), "61"),
    (form(msisdn="380972920000"), "62"),
    (form(msisdn="380972920000", reference="not valid!"), "65"),
    (form(reference="r1"), "2"),
    (bulk([{"msisdn": "38097292000x", "reference": "r1"}]), "61"),
    (bulk([{"msisdn": "380972920000"}]), "62"),
    (bulk([{"msisdn": "380972920000", "reference": "a" * 33}]), "65"),
    (bulk([{"reference": "r1"}]), "64"),
    (bulk([]), "64"),
    (form(payload="[not json"), "64"),
    (form(payload='"380972920000"'), "64"),
    (bulk(["380972920000"]), "64"),
    (
        bulk(
            [
                {"msisdn": "380972920000", "reference": "r1"},
                {"msisdn": "+380972920000", "reference": "r2"},
            ]
        ),
        "66",
    ),
    (form(msisdn="380972920000", reference="r1", tariff=10), "6"),
    (form(msisdn="380972920000", reference="r1", tariff=3), "9"),
    (form(msisdn="46701234567", reference="r1"), "7"),
    (
        bulk(
            [
                {"msisdn": "380972920000", "reference": "r1"},
                {"msisdn": "380972920001", "reference": "r2", "tariff": 5},
            ]
        ),
        "9",
    ),
]


@pytest.mark.parametrize(("request_", "code"), CASES)
async def test_error_codes(
    database_url: str, clock: FrozenClock, request_: dict[str, Any], code: str
) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        response = await create(client, world.live_key, **request_)
        assert response.json()["error"] == code, response.json()
        assert response.status_code == 400
        assert await lookups(client_sessions(client)) == []
        assert await balance_of(client_sessions(client), world.client_id) == Decimal(10)


async def test_single_reference_used_is_63(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        await create(client, world.live_key, **form(msisdn="380972920000", reference="r1"))
        again = await create(client, world.live_key, **form(msisdn="380972920001", reference="r1"))
        assert again.status_code == 409 and again.json()["error"] == "63"
        assert len(await lookups(client_sessions(client))) == 1


async def test_general_errors(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock, balance=Decimal("0.003"))
        one = form(msisdn="380972920000", reference="r1")
        bad_key = await create(client, "live_nope", **one)
        assert (bad_key.status_code, bad_key.json()["error"]) == (401, "1")
        assert (await client.get("/hlr/create", headers={"X-API-KEY": world.live_key})).json()[
            "error"
        ] == "4"
        assert (await client.get("/hlr/a/b", headers={"X-API-KEY": world.live_key})).json()[
            "error"
        ] == "4"
        assert (await create(client, world.live_key, **one)).json()["error"] == "0"
        # 0.001 left: the next lookup (0.002) is refused whole, nothing stored.
        broke = await create(client, world.live_key, **form(msisdn="380972920001", reference="r2"))
        assert (broke.status_code, broke.json()["error"]) == (402, "8")
        assert len(await lookups(client_sessions(client))) == 1
        assert await balance_of(client_sessions(client), world.client_id) == Decimal("0.001")


# --- Forms, billing, test keys ----------------------------------------------------------------


async def test_json_bodies_are_accepted(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        headers = {"X-API-KEY": world.live_key}
        single = await client.post(
            "/hlr/create", headers=headers, json={"msisdn": "380972920000", "reference": "j1"}
        )
        array = await client.post(
            "/hlr/create", headers=headers, json=[{"msisdn": "380972920001", "reference": "j2"}]
        )
        wrapped = await client.post(
            "/hlr/create",
            headers=headers,
            json={"payload": [{"msisdn": "380972920002", "reference": "j3"}]},
        )
        assert single.json()["error"] == "0" and "result" not in single.json()
        assert array.json()["result"][0]["reference"] == "j2"
        assert wrapped.json()["result"][0]["reference"] == "j3"
        assert len(await lookups(client_sessions(client))) == 3


async def test_charges_use_the_clients_tariff_and_the_ledger(
    database_url: str, clock: FrozenClock
) -> None:
    async with api_client(database_url, clock) as client:
        sessions = client_sessions(client)
        world, _ = await build_hlr_world(sessions, clock)
        response = await create(
            client, world.live_key, **form(msisdn="48501234567", reference="p1")
        )
        assert response.json()["price"] == "0.003"  # tariff 0 (the client's), Poland
        async with sessions() as session:
            entries = list(
                await session.scalars(select(LedgerEntry).where(LedgerEntry.reason != "top_up"))
            )
        assert [(e.amount, e.reason, e.reference) for e in entries] == [
            (Decimal("-0.003"), "charge", f"hlr:{response.json()['id']}")
        ]


async def test_test_keys_store_and_charge_nothing(database_url: str, clock: FrozenClock) -> None:
    async with api_client(database_url, clock) as client:
        world, _ = await build_hlr_world(client_sessions(client), clock)
        headers = {"X-API-KEY": world.test_key}
        single = await create(
            client, world.test_key, **form(msisdn="380972920000", reference="t1", tariff=9)
        )
        assert single.json()["error"] == "0" and single.json()["price"] == "0.002"
        many = await create(
            client,
            world.test_key,
            **bulk([{"msisdn": "380972920000", "reference": "t1"}] * 1),
        )
        assert many.json()["totalprice"] == "0.002"
        # Validated like live requests.
        assert (await create(client, world.test_key, **form(msisdn="1", reference="t2"))).json()[
            "error"
        ] == "61"
        result = (await client.get("/hlr/12345", headers=headers)).json()
        assert result["id"] == "12345" and result["status"] in (
            "active",
            "absent",
            "unknown",
            "failed",
        )
        assert set(result["details"]) == {"ported", "roaming"}
        by_reference = (await client.get("/hlr/reference/abc", headers=headers)).json()
        assert by_reference["reference"] == "abc"
        assert await lookups(client_sessions(client)) == []
        assert await balance_of(client_sessions(client), world.client_id) == Decimal(10)


def client_sessions(client: httpx.AsyncClient) -> Any:
    """The app's own sessionmaker, behind the ASGI transport."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app.state.tidings.sessions  # type: ignore[attr-defined]
