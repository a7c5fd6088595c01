"""Building a connector for a supplier row, by its kind."""

from __future__ import annotations

from tidings.clock import Clock
from tidings.connectors.base import Connector
from tidings.connectors.http import HttpConnector
from tidings.connectors.simulator import SimulatorConnector
from tidings.connectors.smpp import SmppConnector
from tidings.errors import ConfigurationError
from tidings.routing.models import Supplier

# Kinds that have a connector. Routing refuses to create suppliers of any other kind.
CONNECTOR_KINDS = ("simulator", "http", "smpp")


def build_connector(supplier: Supplier, clock: Clock) -> Connector:
    if supplier.kind == "simulator":
        return SimulatorConnector(supplier.id, dict(supplier.options or {}), clock)
    if supplier.kind == "http":
        return HttpConnector(supplier.id, dict(supplier.options or {}), clock)
    if supplier.kind == "smpp":
        return SmppConnector(supplier.id, dict(supplier.options or {}), clock)
    raise ConfigurationError(f"supplier {supplier.name!r} has unknown kind {supplier.kind!r}")
