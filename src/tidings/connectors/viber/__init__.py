"""Viber business-messaging connectors: the contract (base.py) and a simulator."""

from tidings.connectors.viber.base import ViberConnector, ViberOutbound
from tidings.connectors.viber.simulator import ViberSimulatorConnector

VIBER_KINDS = ("viber_simulator",)

__all__ = ["VIBER_KINDS", "ViberConnector", "ViberOutbound", "ViberSimulatorConnector"]
