"""Viber messages in statistics exports (seed 004's "Детальная статистика"), on each database.

The messages go the real way: accepted over `/rest/viber/create`, sent to the Viber simulator
by the delivery worker; the one to a number without Viber falls back to its SMS alternative,
which the SMS simulator delivers. A Viber row carries `img`, `Caption`, `Action` and its
fallback SMS as `alternativeSMS`; the fallback SMS is an SMS row of its own in `sms` exports
and only the Viber row's `alternativeSMS` in an export of every type (docs/exports.md).
"""

from __future__ import annotations

import asyncio
import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.test_viber_api import build_viber_world, create, settle, viber_request
from tests.support import accept_messages, api_client
from tidings.clock import FrozenClock
from tidings.delivery.worker import DeliveryWorker, WorkerOptions
from tidings.exports.repository import create_reader_engine
from tidings.exports.rows import SMS_FIELDS
from tidings.exports.storage import LocalStorage
from tidings.exports.worker import ExportOptions, ExportWorker
from tidings.messages.models import Message
from tidings.numbering import CountryTable

NOT_A_USER = "380505142320"  # falls back to SMS (seed 004's example number)
READER = "380972920283"  # has Viber and reads the message
WINDOW = {"time_in_from": "2026-03-01 00:00:00", "time_in_to": "2026-03-01 23:59:59"}
# Seed 004's Viber example: its image, button and the SMS alternative's text.
CONTENT = {
    "img": "https://site.com/image.png",
    "caption": "КУПИ!",
    "action": "https://site.com/buy.html",
}
ALTERNATIVE = {
    "text": "testing message for Viber undeliv",
    "originator": "testsms",
    "validity": 300,
}

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class Env:
    http: httpx.AsyncClient
    key: dict[str, str]
    exports: ExportWorker
    sms_id: int  # a plain SMS
    viber_id: int  # to NOT_A_USER, with its fallback SMS
    fallback_id: int
    read_id: int  # to READER, read

    async def file(self, fmt: str, filters: dict[str, Any]) -> bytes | None:
        """Create an export, build it, fetch `fmt` and delete it; None when empty (93)."""
        created = await self.http.post("/rest/stat/create", headers=self.key, json=filters)
        assert created.status_code == 200, created.text
        key = created.json()["key"]
        assert await self.exports.run_once()
        answer = await self.http.get(f"/rest/stat/file/id/{key}/format/{fmt}", headers=self.key)
        await self.http.delete(f"/rest/message/list/{key}", headers=self.key)
        if answer.status_code == 404 and answer.json()["error"] == "93":
            return None
        assert answer.status_code == 200, answer.text
        return answer.content

    async def export(self, **filters: Any) -> list[dict[str, Any]]:
        data = await self.file("json", filters)
        return [] if data is None else list(orjson.loads(data)["message_data"])

    async def ids(self, **filters: Any) -> list[int]:
        return [row["message_ID"] for row in await self.export(**filters)]


async def status_of(sessions: Sessions, message_id: int) -> str:
    async with sessions() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message.status


async def deliver_everything(sessions: Sessions, clock: FrozenClock, read_id: int) -> None:
    """Run the delivery worker until every message is final and the read report has landed
    (it follows the delivery report; bounded in count, like `settle`)."""
    worker = DeliveryWorker(sessions, clock, WorkerOptions(poll_interval=0.01))
    await worker.refresh_suppliers()
    try:
        await settle(worker)
        for _ in range(500):
            if await status_of(sessions, read_id) == "read":
                break
            await asyncio.sleep(0.01)
        await settle(worker)  # the fallback SMS, had it raced the read report
    finally:
        await worker.stop()


@pytest.fixture
async def env(
    database_url: str, sessions: Sessions, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[Env]:
    vw = await build_viber_world(
        sessions, clock, viber_options={"non_users": NOT_A_USER, "read_ratio": 1}
    )
    [sms_id] = await accept_messages(sessions, clock, vw.world, 1)  # at 12:00:00
    directory = tmp_path / "exports"
    reader = create_reader_engine(database_url)
    exports = ExportWorker(
        sessions,
        reader,
        LocalStorage(directory),
        clock,
        CountryTable.load(),
        ExportOptions(batch_size=1),
    )
    async with api_client(database_url, clock, settings={"export_dir": str(directory)}) as http:
        clock.advance(1)  # the Viber messages at 12:00:01
        options = {"viber": CONTENT, "sms": ALTERNATIVE}
        request = viber_request(NOT_A_USER, alpha_name="My Company", options=options)
        second = {**viber_request(READER)["messages"][0], "to": [{"msisdn": READER}]}
        request["messages"].append(second)
        answer = await create(http, vw, request)
        viber_id, read_id = (int(m["id"]) for m in answer[0]["messages"])
        clock.advance(1)  # reports and the fallback SMS at 12:00:02
        await deliver_everything(sessions, clock, read_id)
        async with sessions() as session:
            fallback = await session.scalar(select(Message).where(Message.parent_id == viber_id))
        assert fallback is not None
        assert await status_of(sessions, viber_id) == "not_viber_user"
        assert await status_of(sessions, read_id) == "read"
        assert fallback.status == "delivered"
        yield Env(http, vw.key, exports, sms_id, viber_id, fallback.id, read_id)
    await reader.dispose()


async def test_a_viber_row_carries_its_content_and_alternative_sms(env: Env) -> None:
    rows = await env.export(message_type="viber", **WINDOW)
    assert [row["message_ID"] for row in rows] == [env.viber_id, env.read_id]
    fell_back, read = rows
    # The seed's example row: SMS fields, then img, Caption, Action, alternativeSMS.
    assert list(fell_back) == [*SMS_FIELDS, "img", "Caption", "Action", "alternativeSMS"]
    assert fell_back["message_type"] == "viber"
    assert fell_back["Status"] == "not-viber-user"
    assert (fell_back["originator"], fell_back["body"]) == ("My Company", "Hello over Viber")
    assert (fell_back["img"], fell_back["Caption"], fell_back["Action"]) == (
        CONTENT["img"],
        CONTENT["caption"],
        CONTENT["action"],
    )
    assert (fell_back["msisdn"], fell_back["Country_name"]) == (int(NOT_A_USER), "Ukraine")
    assert fell_back["Incoming date"] == "2026-03-01 12:00:01"
    alternative = fell_back["alternativeSMS"]
    assert list(alternative) == list(SMS_FIELDS)
    assert alternative["message_ID"] == env.fallback_id
    assert alternative["message_type"] == "sms"
    assert alternative["msisdn"] == int(NOT_A_USER)
    assert alternative["brand_name"] == fell_back["brand_name"]
    assert (alternative["originator"], alternative["body"]) == (
        "testsms",
        "testing message for Viber undeliv",
    )
    assert alternative["Status"] == "Delivered"
    assert alternative["Incoming date"] == "2026-03-01 12:00:02"
    assert alternative["DLR Date"] is not None
    assert alternative["price"].endswith(" EUR") and alternative["price"] != "0.0000000 EUR"
    # No fallback: no alternativeSMS key, and no content given: the Viber fields are null.
    assert read["Status"] == "Read"
    assert "alternativeSMS" not in read
    assert (read["img"], read["Caption"], read["Action"]) == (None, None, None)


async def test_the_alternative_sms_in_xml_and_csv(env: Env) -> None:
    data = await env.file("xml", {"message_type": "viber", **WINDOW})
    assert data is not None
    messages = ET.fromstring(data).findall("message_data/message")
    assert [m.findtext("message_ID") for m in messages] == [str(env.viber_id), str(env.read_id)]
    first = messages[0]
    assert first.findtext("Status") == "not-viber-user"
    assert first.findtext("Caption") == "КУПИ!"
    assert first.findtext("alternativeSMS/message_ID") == str(env.fallback_id)
    assert first.findtext("alternativeSMS/body") == "testing message for Viber undeliv"
    assert first.findtext("alternativeSMS/Status") == "Delivered"
    assert messages[1].find("alternativeSMS") is None

    data = await env.file("csv", {"message_type": "viber", **WINDOW})
    assert data is not None
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    assert [row["message_ID"] for row in rows] == [str(env.viber_id), str(env.read_id)]
    assert rows[0]["img"] == CONTENT["img"] and rows[0]["Action"] == CONTENT["action"]
    assert rows[0]["alternativeSMS.message_ID"] == str(env.fallback_id)
    assert rows[0]["alternativeSMS.originator"] == "testsms"
    assert rows[0]["alternativeSMS.Status"] == "Delivered"
    assert rows[1]["Status"] == "Read" and rows[1]["alternativeSMS.message_ID"] == ""


async def test_where_the_fallback_sms_appears_as_a_row_of_its_own(env: Env) -> None:
    # In SMS statistics: it is an SMS the client was sent and charged for.
    assert await env.ids(message_type="sms", **WINDOW) == [env.sms_id, env.fallback_id]
    sms_rows = await env.export(message_type="sms", status="Delivered", **WINDOW)
    assert env.fallback_id in [row["message_ID"] for row in sms_rows]
    # Every type: each message once, the fallback under its Viber message (seed's example).
    rows = await env.export(**WINDOW)
    assert [row["message_ID"] for row in rows] == [env.sms_id, env.viber_id, env.read_id]
    assert [row["message_type"] for row in rows] == ["sms", "viber", "viber"]
    assert rows[1]["alternativeSMS"]["message_ID"] == env.fallback_id
    # By id: every listed message is a row, the fallback SMS too.
    by_id = await env.export(message_id=[env.viber_id, env.fallback_id])
    assert [row["message_ID"] for row in by_id] == [env.viber_id, env.fallback_id]
    assert by_id[0]["alternativeSMS"]["message_ID"] == env.fallback_id
    assert "alternativeSMS" not in by_id[1] and by_id[1]["message_type"] == "sms"


async def test_viber_status_words_select_viber_statuses(env: Env) -> None:
    assert await env.ids(status="Read", **WINDOW) == [env.read_id]
    assert await env.ids(status="read", message_type="viber", **WINDOW) == [env.read_id]
    assert await env.ids(status="not-viber-user", **WINDOW) == [env.viber_id]
    assert await env.ids(status="NOT-VIBER-USER", message_type="viber", **WINDOW) == [env.viber_id]
    assert await env.ids(status=["Read", "not-viber-user"], **WINDOW) == [
        env.viber_id,
        env.read_id,
    ]
    assert await env.ids(status="Read", message_type="sms", **WINDOW) == []
    assert await env.ids(status="Delivered", message_type="viber", **WINDOW) == []
