"""The SMPP connector's MO: answered only once the inbound sink stored it; a sink that fails
makes the SMSC send it again (Tidings' test SMSC redelivers what was not acknowledged)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tests.unit.test_smpp_session import Collect, options
from tidings.clock import SystemClock
from tidings.connectors.base import InboundItem, InboundMo
from tidings.connectors.smpp import SmppConnector
from tidings.connectors.smpp.smsc import Smsc, SmscConfig


async def test_mo_is_acknowledged_only_once_stored() -> None:
    stored: list[InboundItem] = []
    calls = 0

    async def sink(supplier_id: int, items: Sequence[InboundItem]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        assert supplier_id == 1
        stored.extend(items)

    async with Smsc(SmscConfig(receipts=False, redeliver_delay=0.05)) as smsc:
        connector = SmppConnector(1, options(smsc.port), SystemClock())
        connector.attach_inbound(sink)
        reports = Collect()
        await connector.start(reports)
        try:
            assert await connector.sessions[0].wait_bound(2)
            smsc.send_mo("380971234567", "4567", b"hello")
            for _ in range(500):
                if smsc.receipts_acked == 1:
                    break
                await asyncio.sleep(0.01)
        finally:
            await connector.stop()
    assert calls == 2 and smsc.receipts_acked == 1  # refused once, then stored and answered
    [mo] = stored
    assert isinstance(mo, InboundMo)
    assert (mo.sender, mo.recipient, mo.text) == ("380971234567", "4567", "hello")
    assert reports.reports == []
