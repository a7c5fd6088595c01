"""A built-in HLR provider: no network, the same answer for the same number every time.

Each number's answer is drawn from a hash of the number (and the `seed` option), so a
number is always active, or always absent, and always ported or not: tests and demos can
rely on it, and a repeated lookup agrees with the first. The network is the carrier the
number range was allocated to (libphonenumber), or for a ported number another carrier of
the same country; numbers libphonenumber knows no carrier for are `unknown`.

Options (`tidings suppliers create --kind hlr_simulator --option k=v`), all optional:
    absent_ratio    share of known numbers that are absent (default 0.1)
    failed_ratio    share of lookups that fail at the HLR (default 0.02)
    ported_ratio    share of active numbers ported to another carrier (default 0.1)
    roaming_ratio   share of active numbers roaming (default 0.05)
    retry_ratio     share of batches answered with a temporary failure, for drills (default 0)
    latency_ms      time each batch takes (default 0)
    seed            changes every number's answer, for another reproducible population
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Sequence
from typing import Any

from tidings.connectors.hlr.base import (
    ABSENT,
    ACTIVE,
    FAILED,
    UNKNOWN,
    HlrAnswer,
    HlrQuery,
    HlrResult,
    Outcome,
)
from tidings.connectors.hlr.networks import NetworkTable
from tidings.connectors.simulation import ratio_option
from tidings.errors import ConfigurationError
from tidings.numbering import CountryTable


def _ratio(options: dict[str, Any], name: str, default: float) -> float:
    return ratio_option(options, name, default, kind="hlr_simulator")


class HlrSimulator:
    def __init__(
        self, provider_id: int, options: dict[str, Any], countries: CountryTable | None = None
    ) -> None:
        self.provider_id = provider_id
        self.absent_ratio = _ratio(options, "absent_ratio", 0.1)
        self.failed_ratio = _ratio(options, "failed_ratio", 0.02)
        self.ported_ratio = _ratio(options, "ported_ratio", 0.1)
        self.roaming_ratio = _ratio(options, "roaming_ratio", 0.05)
        self.retry_ratio = _ratio(options, "retry_ratio", 0.0)
        try:
            self.latency = float(options.get("latency_ms", 0)) / 1000
        except (TypeError, ValueError):
            raise ConfigurationError("hlr_simulator option latency_ms must be a number") from None
        self.seed = str(options.get("seed", ""))
        self.networks = NetworkTable(countries or CountryTable.load())
        self._batches = random.Random(self.seed)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def lookup(self, queries: Sequence[HlrQuery]) -> list[HlrAnswer]:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.retry_ratio and self._batches.random() < self.retry_ratio:
            return [
                HlrAnswer(q.lookup_id, Outcome.RETRY, error="simulated HLR outage") for q in queries
            ]
        return [
            HlrAnswer(q.lookup_id, Outcome.RESULT, result=self.answer(q.msisdn)) for q in queries
        ]

    def answer(self, msisdn: str) -> HlrResult:
        """The number's answer: a pure function of the number, the seed and the ratios."""
        draw = random.Random(hashlib.sha256(f"{self.seed}:{msisdn}".encode()).digest())
        if draw.random() < self.failed_ratio:
            return HlrResult(FAILED, None)
        found = self.networks.carrier_of(msisdn)
        if found is None:
            return HlrResult(UNKNOWN, None)
        iso, code, carrier = found
        if draw.random() < self.absent_ratio:
            return HlrResult(ABSENT, self.networks.mccmnc(iso, code, carrier))
        ported = draw.random() < self.ported_ratio
        roaming = draw.random() < self.roaming_ratio
        others = [name for name in self.networks.carriers(code) if name != carrier]
        if ported and others:
            carrier = draw.choice(others)
        return HlrResult(
            ACTIVE,
            self.networks.mccmnc(iso, code, carrier),
            ported=ported and bool(others),
            roaming=roaming,
        )
