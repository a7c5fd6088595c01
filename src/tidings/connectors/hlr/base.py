"""The contract between the HLR worker and an HLR provider.

A provider is built from a supplier row of an `hlr_*` kind, started, handed batches of
queries, and stopped. A query either asks for a number for the first time, or (with the
`provider_ref` the provider gave earlier) asks again for a result that was not ready.
The provider translates; retry policy, charging and reporting stay in `tidings.hlr`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# The seed's result statuses; `sent` means asked, no answer yet.
SENT = "sent"
ACTIVE = "active"
ABSENT = "absent"
UNKNOWN = "unknown"
FAILED = "failed"
FINAL_STATUSES = (ACTIVE, ABSENT, UNKNOWN, FAILED)
STATUSES = (SENT, *FINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class HlrQuery:
    lookup_id: int
    msisdn: str
    provider_ref: str | None = None  # set when the provider already took this query


@dataclass(frozen=True, slots=True)
class HlrResult:
    status: str  # one of FINAL_STATUSES
    network: str | None  # MCCMNC, for active and absent
    ported: bool = False
    roaming: bool = False


class Outcome(StrEnum):
    RESULT = "result"  # `result` holds the final answer
    PENDING = "pending"  # the provider took the query; ask again later with `provider_ref`
    RETRY = "retry"  # a temporary failure: ask again later


@dataclass(frozen=True, slots=True)
class HlrAnswer:
    lookup_id: int
    outcome: Outcome
    result: HlrResult | None = None
    provider_ref: str | None = None
    error: str | None = None


class HlrProvider(Protocol):
    provider_id: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def lookup(self, queries: Sequence[HlrQuery]) -> list[HlrAnswer]:
        """One answer per query, in any order. Raising means RETRY for the whole batch."""
        ...
