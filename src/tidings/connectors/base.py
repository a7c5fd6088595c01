"""The contract between the dispatcher and a supplier connector.

A connector is created from a supplier row, started with a receipt sink, handed batches
of messages to submit, and stopped. It translates between our one message model and the
upstream's protocol, and holds no business rules: pricing, routing, retry policy and status
bookkeeping stay in the domain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tidings.messages.status import Status


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: int
    msisdn: str
    originator: str
    body: str
    encoding: str
    parts: int
    expires_at: datetime
    reference: str | None = None
    currency: str | None = None  # of the client's price (a failover's cost is kept in it)


class SubmitResult(StrEnum):
    ACCEPTED = "accepted"  # the supplier took it; supplier_message_id is set
    RETRY = "retry"  # a temporary failure: try the same message again later
    REJECTED = "rejected"  # the supplier refused it for good


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    message_id: int
    result: SubmitResult
    supplier_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, when the supplier said so
    # A long message the supplier took part by part: every part's id, in order (the first
    # is supplier_message_id); a report for any of them is about this message.
    part_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SupplierReport:
    """A status a supplier reported for one of our messages, by the id it gave us."""

    supplier_message_id: str
    status: Status
    at: datetime
    detail: str | None = None


ReportSink = Callable[[int, Sequence[SupplierReport]], Awaitable[None]]
"""Persists reports of a supplier (by id); returns once they are durable."""


class Connector(Protocol):
    supplier_id: int

    async def start(self, reports: ReportSink) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        """Hand a batch to the supplier; one outcome per message, in any order.

        Raising is allowed and means every message of the batch gets a RETRY outcome.
        """
        ...


class AnswersEach(Protocol):
    """A connector that can tell each message's outcome as soon as it is known (its class
    sets ``reports_each_answer = True``): the lane records ``sent`` meanwhile."""

    async def submit(
        self,
        batch: Sequence[OutboundMessage],
        answered: Callable[[SubmitOutcome], None] | None = None,
    ) -> list[SubmitOutcome]: ...
