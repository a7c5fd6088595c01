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
from typing import Protocol, runtime_checkable

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


# --- inbound messages (MO) ---


@dataclass(frozen=True, slots=True)
class InboundMo:
    """A whole inbound message a supplier delivered.

    ``supplier_message_id`` (HTTP suppliers, the simulator) makes a second delivery of it
    one row; an SMPP deliver_sm has no id, so the connector gives a ``fingerprint`` of the
    PDU instead and a resend within the supplier's window is taken as the same message.
    """

    sender: str
    recipient: str
    text: str
    received_at: datetime
    supplier_message_id: str | None = None
    fingerprint: str | None = None
    parts: int = 1


@dataclass(frozen=True, slots=True)
class InboundPiece:
    """One part of a long inbound message, kept until its siblings come (SMPP).

    ``units`` and ``alphabet`` are the part's user data as ``text.read_part`` gives them;
    the parts are joined with ``text.join_text``, the SMPP server's own reassembly.
    """

    sender: str
    recipient: str
    assembly: str
    seqnum: int
    total: int
    units: bytes
    alphabet: str
    received_at: datetime


InboundItem = InboundMo | InboundPiece
InboundSink = Callable[[int, Sequence[InboundItem]], Awaitable[None]]
"""Stores a supplier's inbound messages (by supplier id); returns once they are durable."""


@runtime_checkable
class TakesInbound(Protocol):
    """A connector that delivers inbound messages: the worker hands it the sink first."""

    def attach_inbound(self, sink: InboundSink) -> None: ...
