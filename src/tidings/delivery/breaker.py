"""What a lane knows of its supplier's circuit breaker, and what it tells of its changes.

The breaker's state is in the database (routing/health.py). A lane reads it from the routing
plan snapshot (at most TIDINGS_CACHE_TTL old), or, when newer, from what its own recording
transactions changed: the lane that opened a breaker stops sending at once, other processes
within the snapshot's age.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tidings.observability.metrics import Metrics
from tidings.routing.health import Transition
from tidings.routing.plan import Health, RoutingPlan

log = logging.getLogger("tidings.routing")


@dataclass(frozen=True, slots=True)
class _Known:
    at: datetime
    health: Health


class LaneBreaker:
    def __init__(self, supplier_id: int, name: str, metrics: Metrics | None) -> None:
        self.supplier_id = supplier_id
        self.name = name
        self.metrics = metrics
        self._known: _Known | None = None

    def view(self, plan: RoutingPlan, loaded_at: datetime | None) -> Health:
        if self._known is not None and (loaded_at is None or self._known.at >= loaded_at):
            return self._known.health
        return plan.health.get(self.supplier_id, Health())

    def learned(self, transition: Transition, now: datetime, probe_at: datetime | None) -> None:
        self._known = _Known(now, Health(transition.after, 1.0, probe_at, transition.reason))
        level = logging.WARNING if transition.after == "open" else logging.INFO
        log.log(
            level,
            "supplier %s breaker %s -> %s: %s",
            self.name,
            transition.before,
            transition.after,
            transition.reason,
            extra={"supplier_id": self.supplier_id, "breaker": transition.after},
        )
        if self.metrics is not None:
            self.metrics.breaker_changed(self.supplier_id, transition.after)
