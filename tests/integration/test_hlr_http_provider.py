"""The HTTP HLR provider against an upstream on 127.0.0.1 that answers as seed 004's HLR API
does, including its failures: a create repeated after a lost answer (63), account errors and
5xx (retry), a number the upstream refuses (failed), a result that is not ready (pending).
The full path against a real second Tidings is tests/e2e/test_hlr_e2e.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.support import Received, Receiver
from tidings.connectors.hlr.base import HlrQuery, Outcome
from tidings.connectors.hlr.http import HttpHlrProvider
from tidings.errors import ConfigurationError


class Upstream:
    """Seed 004's HLR API over a few numbers: `state[number]` is what it says about each."""

    def __init__(self) -> None:
        self.by_reference: dict[str, str] = {}
        self.status = "sent"

    async def respond(self, request: Received, _: int) -> tuple[int, bytes]:
        if request.headers.get("x-api-key") != "key":
            return 401, orjson.dumps({"error": "1", "errorDescription": "Invalid key"})
        if request.method == "POST" and request.target == "/hlr/create":
            body = orjson.loads(request.body)
            msisdn, reference = body["msisdn"], body["reference"]
            if msisdn.startswith("999"):
                return 400, orjson.dumps({"error": "61", "errorDescription": "Incorrect msisdn"})
            if msisdn.startswith("555"):
                return 503, b"busy"
            if msisdn.startswith("888"):
                return 402, orjson.dumps({"error": "8", "errorDescription": "Not enough money"})
            if reference in self.by_reference:
                return 409, orjson.dumps({"error": "63", "errorDescription": "HLR already exists"})
            self.by_reference[reference] = msisdn
            return 200, orjson.dumps({"error": "0", "id": reference[1:], "price": "0.002"})
        lookup_id = request.target.rsplit("/", 1)[-1].removeprefix("H")
        return 200, orjson.dumps(self.result(lookup_id))

    def result(self, lookup_id: str) -> dict[str, Any]:
        final = self.status != "sent"
        return {
            "id": lookup_id,
            "reference": f"H{lookup_id}",
            "msisdn": self.by_reference.get(f"H{lookup_id}", ""),
            "network": "25503" if final else "unknown",
            "status": self.status,
            "details": {"ported": "1" if final else "0", "roaming": "0"},
            "createdDatetime": "2026-03-01T12:00:00+00:00",
            "statusDatetime": "2026-03-01T12:00:00+00:00",
        }


async def test_create_poll_and_result() -> None:
    upstream = Upstream()
    async with Receiver(respond=upstream.respond) as server:
        provider = HttpHlrProvider(1, {"url": f"http://127.0.0.1:{server.port}", "api_key": "key"})
        await provider.start()
        try:
            [created] = await provider.lookup([HlrQuery(41, "380972920000")])
            assert (created.outcome, created.provider_ref) == (Outcome.PENDING, "41")
            [still] = await provider.lookup([HlrQuery(41, "380972920000", "41")])
            assert still.outcome is Outcome.PENDING
            upstream.status = "active"
            [done] = await provider.lookup([HlrQuery(41, "380972920000", "41")])
        finally:
            await provider.stop()
    assert done.outcome is Outcome.RESULT and done.result is not None
    assert (done.result.status, done.result.network, done.result.ported) == (
        "active",
        "25503",
        True,
    )
    creates = [r for r in server.requests if r.method == "POST"]
    assert orjson.loads(creates[0].body) == {"msisdn": "380972920000", "reference": "H41"}


async def test_a_repeated_create_finds_the_upstream_lookup() -> None:
    upstream = Upstream()
    upstream.by_reference["H7"] = "380972920000"  # taken before; our record of it was lost
    upstream.status = "absent"
    async with Receiver(respond=upstream.respond) as server:
        provider = HttpHlrProvider(1, {"url": f"http://127.0.0.1:{server.port}", "api_key": "key"})
        await provider.start()
        try:
            [answer] = await provider.lookup([HlrQuery(7, "380972920000")])
        finally:
            await provider.stop()
    assert answer.outcome is Outcome.RESULT and answer.provider_ref == "7"
    assert answer.result is not None and answer.result.status == "absent"
    assert [r.target for r in server.requests] == ["/hlr/create", "/hlr/reference/H7"]


async def test_failures() -> None:
    upstream = Upstream()
    async with Receiver(respond=upstream.respond) as server:
        url = f"http://127.0.0.1:{server.port}"
        provider = HttpHlrProvider(1, {"url": url, "api_key": "key", "tariff": 9})
        wrong_key = HttpHlrProvider(2, {"url": url, "api_key": "nope"})
        await provider.start()
        await wrong_key.start()
        try:
            answers = {
                a.lookup_id: a
                for a in await provider.lookup(
                    [HlrQuery(1, "999000"), HlrQuery(2, "555000"), HlrQuery(3, "888000")]
                )
            }
            [unauthorised] = await wrong_key.lookup([HlrQuery(4, "380972920000")])
        finally:
            await provider.stop()
            await wrong_key.stop()
    refused = answers[1]
    assert refused.outcome is Outcome.RESULT and refused.result is not None
    assert refused.result.status == "failed" and "61" in (refused.error or "")
    assert answers[2].outcome is Outcome.RETRY and "503" in (answers[2].error or "")
    assert answers[3].outcome is Outcome.RETRY and "error 8" in (answers[3].error or "")
    assert unauthorised.outcome is Outcome.RETRY
    assert orjson.loads(server.requests[0].body)["tariff"] == 9


async def test_an_unreachable_upstream_is_a_retry() -> None:
    async with Receiver() as server:
        port = server.port
    provider = HttpHlrProvider(1, {"url": f"http://127.0.0.1:{port}", "api_key": "k", "timeout": 2})
    await provider.start()
    try:
        [answer] = await provider.lookup([HlrQuery(1, "380972920000")])
    finally:
        await provider.stop()
    assert answer.outcome is Outcome.RETRY and answer.error


@pytest.mark.parametrize(
    "options",
    [{}, {"url": "x", "api_key": "k"}, {"url": "http://h", "api_key": "k", "timeout": "x"}],
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        HttpHlrProvider(1, options)
