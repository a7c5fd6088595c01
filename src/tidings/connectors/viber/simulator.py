"""A built-in Viber provider that pretends: no network, configurable behaviour.

Options (all optional), set with
`tidings suppliers create --kind viber_simulator --option k=v`:
    latency_ms          time each submit takes (default 0)
    dlr_delay_ms        time from submit to the delivery report (default 0)
    read_delay_ms       time from delivery to the "read" (seen) report (default 0)
    non_user_ratio      share of numbers without a Viber account (default 0). Decided per
                        number (a hash of it), so a number is always or never a Viber user
    read_ratio          share of delivered messages the recipient reads (default 0.5)
    undelivered_ratio   share of messages Viber could not deliver (default 0)
    silent_ratio        share of messages that never get a final report (default 0): the
                        Viber TTL runs out, as when a phone stays offline
    non_users, undelivered, silent
                        comma-separated numbers that always end that way (drills, tests)
    reject_ratio        share of submits refused at once (default 0)
    seed                random seed, for reproducible runs

Like the SMS simulator, reports not yet emitted live in memory only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from tidings.clock import Clock
from tidings.connectors.base import SubmitOutcome, SubmitResult, SupplierReport
from tidings.connectors.simulation import SimulatedSupplier, ratio_option
from tidings.connectors.viber.base import ViberOutbound
from tidings.errors import ConfigurationError
from tidings.messages.status import Status


def _ratio(options: dict[str, Any], name: str, default: float) -> float:
    return ratio_option(options, name, default, kind="viber simulator")


def _numbers(options: dict[str, Any], name: str) -> frozenset[str]:
    return frozenset(n.strip() for n in str(options.get(name, "")).split(",") if n.strip())


def _seconds(options: dict[str, Any], name: str) -> float:
    try:
        value = float(options.get(name, 0)) / 1000
    except (TypeError, ValueError):
        raise ConfigurationError(f"viber simulator option {name} must be a number") from None
    if value < 0:
        raise ConfigurationError(f"viber simulator option {name} must not be negative")
    return value


def has_viber(msisdn: str, non_user_ratio: float) -> bool:
    """Whether a number has a Viber account: the same answer every time for a number."""
    digest = hashlib.sha256(msisdn.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 >= non_user_ratio


class ViberSimulatorConnector(SimulatedSupplier):
    def __init__(self, supplier_id: int, options: dict[str, Any], clock: Clock) -> None:
        self.latency = _seconds(options, "latency_ms")
        self.dlr_delay = _seconds(options, "dlr_delay_ms")
        self.read_delay = _seconds(options, "read_delay_ms")
        self.non_user_ratio = _ratio(options, "non_user_ratio", 0.0)
        self.read_ratio = _ratio(options, "read_ratio", 0.5)
        self.undelivered_ratio = _ratio(options, "undelivered_ratio", 0.0)
        self.silent_ratio = _ratio(options, "silent_ratio", 0.0)
        self.reject_ratio = _ratio(options, "reject_ratio", 0.0)
        self.non_users = _numbers(options, "non_users")
        self.undelivered = _numbers(options, "undelivered")
        self.silent = _numbers(options, "silent")
        super().__init__(supplier_id, options, clock, id_prefix="vsim")

    async def submit(self, batch: Sequence[ViberOutbound]) -> list[SubmitOutcome]:
        if self.latency:
            await asyncio.sleep(self.latency)
        outcomes: list[SubmitOutcome] = []
        finals: list[tuple[str, Status]] = []
        reads: list[str] = []
        for message in batch:
            if self.reject_ratio and self.random.random() < self.reject_ratio:
                outcomes.append(
                    SubmitOutcome(message.message_id, SubmitResult.REJECTED, error="simulated")
                )
                continue
            supplier_id = self._next_id()
            outcomes.append(
                SubmitOutcome(
                    message.message_id, SubmitResult.ACCEPTED, supplier_message_id=supplier_id
                )
            )
            final = self._final_status(message.msisdn)
            if final is None:
                continue
            finals.append((supplier_id, final))
            if final is Status.DELIVERED and self.random.random() < self.read_ratio:
                reads.append(supplier_id)
        if finals:
            self._pending.start(self._report(finals, reads))
        return outcomes

    def _final_status(self, msisdn: str) -> Status | None:
        """What Viber will say about a message; None: nothing (its TTL runs out)."""
        if msisdn in self.non_users or not has_viber(msisdn, self.non_user_ratio):
            return Status.NOT_VIBER_USER
        if msisdn in self.undelivered:
            return Status.UNDELIVERED
        if msisdn in self.silent:
            return None
        draw = self.random.random()
        if draw < self.undelivered_ratio:
            return Status.UNDELIVERED
        if draw < self.undelivered_ratio + self.silent_ratio:
            return None
        return Status.DELIVERED

    async def _report(self, finals: list[tuple[str, Status]], reads: list[str]) -> None:
        assert self._sink is not None, "submit before start"
        # Yield at least once, so the report races the submit answer as a real provider's does.
        await asyncio.sleep(self.dlr_delay)
        await self._deliver(
            [
                SupplierReport(sid, status, self.clock.now(), detail=f"simulated {status}")
                for sid, status in finals
            ]
        )
        if reads:
            await asyncio.sleep(self.read_delay)
            now = self.clock.now()
            await self._deliver([SupplierReport(sid, Status.READ, now) for sid in reads])
