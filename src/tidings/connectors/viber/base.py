"""The contract between the dispatcher and a Viber business-messaging provider.

Like the SMS contract (`tidings.connectors.base`): a connector is created from a supplier
row, started with a report sink, handed batches to submit, and stopped. It translates
between our message model and the provider's protocol and holds no business rules. A Viber
provider reports with the same `SupplierReport`s, using Viber's statuses: `sent`,
`delivered`, `read` (seen), `expired`, `undelivered` and `not_viber_user`; what happens next
(the SMS fallback, refunds, webhooks) is the domain's business.

A real provider plugs in by implementing `ViberConnector` and a kind in the registry
(`tidings.connectors.viber.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tidings.connectors.base import ReportSink, SubmitOutcome


@dataclass(frozen=True, slots=True)
class ViberOutbound:
    message_id: int
    msisdn: str
    alpha_name: str
    text: str
    expires_at: datetime
    ttl_seconds: int  # what Viber's own API calls the message's TTL
    is_promotional: bool = False
    img: str | None = None
    caption: str | None = None  # the button's text
    action: str | None = None  # the button's URL
    reference: str | None = None


class ViberConnector(Protocol):
    supplier_id: int

    async def start(self, reports: ReportSink) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, batch: Sequence[ViberOutbound]) -> list[SubmitOutcome]:
        """Hand a batch to the provider; one outcome per message, in any order.

        Raising is allowed and means every message of the batch gets a RETRY outcome.
        """
        ...
