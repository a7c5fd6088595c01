"""Viber providers behind the delivery worker's supplier lanes.

A lane claims jobs, hands `OutboundMessage`s to a connector and records the outcomes — the
same for every channel. `ViberLaneConnector` presents a `ViberConnector` to a lane as such a
connector: it reads the Viber content of the claimed messages (one query per batch, in its
own short read) and submits `ViberOutbound`s. Reports flow through the same sink as SMS.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.connectors.base import OutboundMessage, ReportSink, SubmitOutcome, SubmitResult
from tidings.connectors.viber.base import ViberConnector, ViberOutbound
from tidings.connectors.viber.registry import build_viber_connector
from tidings.routing.models import Supplier
from tidings.viber.repository import ViberRepository


class ViberLaneConnector:
    def __init__(
        self, connector: ViberConnector, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.connector = connector
        self.supplier_id = connector.supplier_id
        self.sessions = sessions

    async def start(self, reports: ReportSink) -> None:
        await self.connector.start(reports)

    async def stop(self) -> None:
        await self.connector.stop()

    async def submit(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        async with self.sessions() as session:
            contents = await ViberRepository(session).contents([m.message_id for m in batch])
        outbound: list[ViberOutbound] = []
        refused: list[SubmitOutcome] = []
        for message in batch:
            content = contents.get(message.message_id)
            if content is None:  # an SMS routed to a Viber supplier: it can't carry it
                refused.append(
                    SubmitOutcome(
                        message.message_id,
                        SubmitResult.REJECTED,
                        error="not a Viber message: no Viber content",
                    )
                )
                continue
            outbound.append(
                ViberOutbound(
                    message_id=message.message_id,
                    msisdn=message.msisdn,
                    alpha_name=message.originator,
                    text=message.body,
                    expires_at=message.expires_at,
                    ttl_seconds=content.ttl_seconds,
                    is_promotional=content.is_promotional,
                    img=content.img,
                    caption=content.caption,
                    action=content.action,
                    reference=message.reference,
                )
            )
        outcomes = await self.connector.submit(outbound) if outbound else []
        return [*outcomes, *refused]


def viber_lane_connector(
    supplier: Supplier, clock: Clock, sessions: async_sessionmaker[AsyncSession]
) -> ViberLaneConnector:
    return ViberLaneConnector(build_viber_connector(supplier, clock), sessions)
