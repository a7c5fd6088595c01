"""Seed 004's HLR result object: the answer of `GET /hlr/{id}` and the callback's body.

    {"id": "34298934543", "reference": "1234567", "msisdn": "380932990000",
     "network": "unknown", "status": "unknown", "details": {"ported": "0", "roaming": "0"},
     "createdDatetime": "2015-08-04T06:50:19+00:00", "statusDatetime": "2015-08-04T06:50:19+00:00"}

`network` is the MCCMNC when the HLR gave one (active, absent), else "unknown", as in the
seed's example; times are ISO 8601 in UTC with the seed's `+00:00`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol


class LookupView(Protocol):
    """What the result object is made of: an `HlrLookup`, or a `FinishedLookup` row."""

    @property
    def id(self) -> int: ...
    @property
    def reference(self) -> str: ...
    @property
    def msisdn(self) -> str: ...
    @property
    def network(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def ported(self) -> bool: ...
    @property
    def roaming(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def status_at(self) -> datetime: ...


def iso_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def result_body(lookup: LookupView) -> dict[str, Any]:
    return {
        "id": str(lookup.id),
        "reference": lookup.reference,
        "msisdn": lookup.msisdn,
        "network": lookup.network or "unknown",
        "status": lookup.status,
        "details": {
            "ported": "1" if lookup.ported else "0",
            "roaming": "1" if lookup.roaming else "0",
        },
        "createdDatetime": iso_time(lookup.created_at),
        "statusDatetime": iso_time(lookup.status_at),
    }
