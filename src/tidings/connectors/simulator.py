"""A built-in supplier that pretends to be a carrier: no network, configurable behaviour.

Options (all optional), set with `tidings suppliers create --kind simulator --option k=v`:
    latency_ms       time each submit takes (default 0)
    dlr_delay_ms     time from submit to the delivery report (default 0)
    delivery_ratio   share of messages delivered (default 1.0)
    outcomes         how the rest end, as weights: "undelivered:2,expired:1,rejected:1"
    enroute          "true": report an intermediate en-route status before the final one
    reject_ratio     share of submits refused at once, for failure drills (default 0)
    seed             random seed, for reproducible runs
    mo_ratio         share of delivered messages the handset answers with an inbound
                     message (default 0), from the message's number to its originator
    mo_text          the answer's text (default "Thanks, got it")

Reports not yet emitted live in memory: like a real carrier that crashes, a simulator that
dies forgets them, and the sweeper closes those messages when their validity ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tidings.clock import Clock
from tidings.connectors.base import (
    InboundMo,
    InboundSink,
    OutboundMessage,
    SubmitOutcome,
    SubmitResult,
    SupplierReport,
)
from tidings.connectors.simulation import SimulatedSupplier, ratio_option
from tidings.errors import ConfigurationError
from tidings.messages.status import Status

_FAILURES = {
    "undelivered": Status.UNDELIVERED,
    "expired": Status.EXPIRED,
    "rejected": Status.REJECTED,
    "unknown": Status.UNKNOWN,
}


def _ratio(options: dict[str, Any], name: str, default: float) -> float:
    return ratio_option(options, name, default, kind="simulator")


def _outcomes(spec: str) -> tuple[list[Status], list[float]]:
    statuses: list[Status] = []
    weights: list[float] = []
    for item in spec.split(","):
        name, _, weight = item.strip().partition(":")
        if name not in _FAILURES:
            raise ConfigurationError(f"simulator outcome {name!r} is not one of {set(_FAILURES)}")
        statuses.append(_FAILURES[name])
        weights.append(float(weight or 1))
    return statuses, weights


class SimulatorConnector(SimulatedSupplier):
    def __init__(self, supplier_id: int, options: dict[str, Any], clock: Clock) -> None:
        self.latency = float(options.get("latency_ms", 0)) / 1000
        self.dlr_delay = float(options.get("dlr_delay_ms", 0)) / 1000
        self.delivery_ratio = _ratio(options, "delivery_ratio", 1.0)
        self.reject_ratio = _ratio(options, "reject_ratio", 0.0)
        self.enroute = str(options.get("enroute", "false")).lower() in ("1", "true", "yes")
        self.failures, self.failure_weights = _outcomes(
            str(options.get("outcomes", "undelivered:2,expired:1,rejected:1"))
        )
        self.mo_ratio = _ratio(options, "mo_ratio", 0.0)
        self.mo_text = str(options.get("mo_text", "Thanks, got it"))
        self._inbound: InboundSink | None = None
        super().__init__(supplier_id, options, clock, id_prefix="sim")

    def attach_inbound(self, sink: InboundSink) -> None:
        self._inbound = sink

    async def submit(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        if self.latency:
            await asyncio.sleep(self.latency)
        outcomes: list[SubmitOutcome] = []
        reports: list[tuple[str, Status]] = []
        answers: list[InboundMo] = []
        for message in batch:
            if self.reject_ratio and self.random.random() < self.reject_ratio:
                outcomes.append(
                    SubmitOutcome(
                        message.message_id, SubmitResult.REJECTED, error="simulated reject"
                    )
                )
                continue
            supplier_id = self._next_id()
            outcomes.append(
                SubmitOutcome(
                    message.message_id, SubmitResult.ACCEPTED, supplier_message_id=supplier_id
                )
            )
            status = self._final_status()
            reports.append((supplier_id, status))
            if self._answers(status):
                answers.append(
                    InboundMo(
                        sender=message.msisdn,
                        recipient=message.originator,
                        text=self.mo_text,
                        received_at=self.clock.now(),
                        supplier_message_id=f"{supplier_id}-mo",
                    )
                )
        if reports:
            self._pending.start(self._report(reports, answers))
        return outcomes

    def _answers(self, status: Status) -> bool:
        return (
            self._inbound is not None
            and status == Status.DELIVERED
            and self.mo_ratio > 0
            and self.random.random() < self.mo_ratio
        )

    def _final_status(self) -> Status:
        if self.random.random() < self.delivery_ratio:
            return Status.DELIVERED
        return self.random.choices(self.failures, self.failure_weights)[0]

    async def _report(
        self, reports: list[tuple[str, Status]], answers: Sequence[InboundMo] = ()
    ) -> None:
        assert self._sink is not None, "submit before start"
        if self.enroute:
            now = self.clock.now()
            await self._deliver([SupplierReport(sid, Status.SENT, now) for sid, _ in reports])
        # Yield at least once, so the report races the submit answer as a fast carrier's does.
        await asyncio.sleep(self.dlr_delay)
        now = self.clock.now()
        await self._deliver(
            [
                SupplierReport(sid, status, now, detail=f"simulated {status}")
                for sid, status in reports
            ]
        )
        if answers and self._inbound is not None:  # the handset answers once it has the text
            await self._hand_over(self._inbound, answers)
