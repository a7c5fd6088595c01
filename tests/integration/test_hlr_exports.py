"""HLR lookups in statistics exports (seed 004's "Детальная статистика"), on each database:
`message_type: hlr` gives HLR rows only, no type gives SMS and HLR rows merged by time, and
the filters apply to lookups as they do to messages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.hlr_support import build_hlr_world
from tests.support import World, accept_messages, api_client
from tidings.clock import FrozenClock
from tidings.connectors.hlr.simulator import HlrSimulator
from tidings.exports.repository import create_reader_engine
from tidings.exports.storage import LocalStorage
from tidings.exports.worker import ExportOptions, ExportWorker
from tidings.hlr.worker import HlrOptions, HlrWorker
from tidings.numbering import CountryTable

NUMBERS = ["380505142320", "380972920000", "380932990000"]
WINDOW = {"time_in_from": "2026-03-01 00:00:00", "time_in_to": "2026-03-01 23:59:59"}


@dataclass
class Env:
    http: httpx.AsyncClient
    world: World
    provider_id: int
    exports: ExportWorker
    clock: FrozenClock

    async def file(self, fmt: str, filters: dict[str, Any]) -> httpx.Response | None:
        """Create an export, build it, fetch it and delete it (five at most are kept);
        None when it came out empty (error 93)."""
        headers = {"X-API-KEY": self.world.live_key}
        created = await self.http.post("/rest/stat/create", headers=headers, json=filters)
        assert created.status_code == 200, created.text
        key = created.json()["key"]
        assert await self.exports.run_once()
        answer = await self.http.get(f"/rest/stat/file/id/{key}/format/{fmt}", headers=headers)
        await self.http.delete(f"/rest/message/list/{key}", headers=headers)
        if answer.status_code == 404 and answer.json()["error"] == "93":
            return None
        assert answer.status_code == 200, answer.text
        return answer

    async def export(self, **filters: Any) -> list[dict[str, Any]]:
        answer = await self.file("json", filters)
        if answer is None:
            return []
        rows: list[dict[str, Any]] = orjson.loads(answer.content)["message_data"]
        return rows

    async def csv(self, **filters: Any) -> list[dict[str, str]]:
        answer = await self.file("csv", filters)
        assert answer is not None
        return list(csv.DictReader(io.StringIO(answer.text)))


@pytest.fixture
async def env(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    tmp_path: Path,
) -> AsyncIterator[Env]:
    clock.set(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    world, provider_id = await build_hlr_world(sessions, clock)
    await accept_messages(sessions, clock, world, 1)  # one SMS at 12:00:00
    reader = create_reader_engine(database_url)
    directory = tmp_path / "exports"
    exports = ExportWorker(
        sessions, reader, LocalStorage(directory), clock, CountryTable.load(), ExportOptions()
    )
    async with api_client(database_url, clock, settings={"export_dir": str(directory)}) as http:
        clock.advance(1)
        for index, number in enumerate(NUMBERS):  # lookups at 12:00:01
            answer = await http.post(
                "/hlr/create",
                headers={"X-API-KEY": world.live_key},
                files={"msisdn": (None, number), "reference": (None, f"h{index}")},
            )
            assert answer.json()["error"] == "0"
        # One round of two: the first two lookups are answered, the third stays "sent".
        worker = HlrWorker(sessions, clock, CountryTable.load(), HlrOptions(batch_size=2))
        await worker.refresh_providers()
        clock.advance(1)
        assert (await worker.step()).finished == 2
        await worker.stop()
        yield Env(http, world, provider_id, exports, clock)
    await reader.dispose()


async def test_hlr_rows_carry_the_lookup_results(env: Env) -> None:
    rows = await env.export(message_type="hlr", **WINDOW)
    assert [row["message_type"] for row in rows] == ["hlr", "hlr", "hlr"]
    simulator = HlrSimulator(env.provider_id, {})
    for row, number in zip(rows, NUMBERS, strict=True):
        assert row["msisdn"] == int(number)
        assert row["originator"] == "HLR"
        assert row["price"] == "0.0020000 EUR"
        assert row["Incoming date"] == "2026-03-01 12:00:01"
        assert row["Country_name"] == "Ukraine"
        assert set(row["body"]) == {
            "Country_name",
            "Brand",
            "Operator",
            "MCC",
            "MNC",
            "Status",
            "IMSI",
            "Ported",
            "Roaming",
        }
    answered, pending = rows[:2], rows[2]
    for row in answered:
        expected = simulator.answer(str(row["msisdn"]))
        assert row["Sending date"] == row["DLR Date"] == "2026-03-01 12:00:02"
        assert row["body"]["Status"] == expected.status.capitalize()
        assert row["Status"] == ("Failed" if expected.status == "failed" else "Delivered")
        if expected.network:
            assert row["mcc"] + row["mnc"] == expected.network
            assert row["body"]["MCC"] + row["body"]["MNC"] == expected.network
        assert row["body"]["Ported"] == int(expected.ported)
        assert row["body"]["Roaming"] == int(expected.roaming)
        assert row["body"]["IMSI"] is None
    assert [row["brand_name"] for row in rows] == ["Vodafone", "Kyivstar", "lifecell"]
    assert [row["body"]["Brand"] for row in rows] == ["Vodafone", "Kyivstar", "lifecell"]
    assert (pending["Status"], pending["body"]["Status"], pending["DLR Date"]) == (
        "Sent",
        "Sent",
        None,
    )


async def test_every_type_merges_sms_and_hlr_by_time(env: Env) -> None:
    rows = await env.export(**WINDOW)
    assert [row["message_type"] for row in rows] == ["sms", "hlr", "hlr", "hlr"]
    assert isinstance(rows[0]["body"], str) and isinstance(rows[1]["body"], dict)
    assert [row["message_type"] for row in await env.export(message_type="sms", **WINDOW)] == [
        "sms"
    ]


async def test_filters_apply_to_lookups(env: Env) -> None:
    assert len(await env.export(message_type="hlr", msisdn=[NUMBERS[1]], **WINDOW)) == 1
    assert await env.export(message_type="hlr", originator="shop", **WINDOW) == []
    assert len(await env.export(message_type="hlr", originator="HLR", **WINDOW)) == 3
    assert len(await env.export(message_type="hlr", status="Sent", **WINDOW)) == 1
    assert len(await env.export(message_type="hlr", country_name="Poland", **WINDOW)) == 0
    assert len(await env.export(message_type="hlr", source_type="api", **WINDOW)) == 3
    late = {"time_in_from": "2026-03-01 12:00:02", "time_in_to": "2026-03-01 23:00:00"}
    assert await env.export(message_type="hlr", **late) == []
    # message_id selects messages only: lookup ids are numbered on their own (1, 2, 3).
    [sms] = await env.export(message_type="sms", **WINDOW)
    wanted = [int(sms["message_ID"]), 1, 2, 3]
    assert [r["message_type"] for r in await env.export(message_id=wanted)] == ["sms"]


async def test_csv_flattens_the_hlr_body(env: Env) -> None:
    rows = await env.csv(message_type="hlr", **WINDOW)
    assert len(rows) == 3
    assert rows[0]["body.Brand"] == "Vodafone"
    assert rows[2]["body.Status"] == "Sent"
