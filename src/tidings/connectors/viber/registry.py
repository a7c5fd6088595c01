"""Building a Viber connector for a supplier row, by its kind."""

from __future__ import annotations

from tidings.clock import Clock
from tidings.connectors.viber.base import ViberConnector
from tidings.connectors.viber.simulator import ViberSimulatorConnector
from tidings.errors import ConfigurationError
from tidings.routing.models import Supplier


def build_viber_connector(supplier: Supplier, clock: Clock) -> ViberConnector:
    if supplier.kind == "viber_simulator":
        return ViberSimulatorConnector(supplier.id, dict(supplier.options or {}), clock)
    raise ConfigurationError(f"supplier {supplier.name!r} is not a Viber kind ({supplier.kind!r})")
