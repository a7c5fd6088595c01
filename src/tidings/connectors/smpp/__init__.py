"""SMPP 3.4: the codec (pdu, tlv, text, receipts), the ESME session and the supplier connector.

The codec modules have no I/O and are shared with the SMPP server; ``smsc.py`` is a small
SMSC for tests, benchmarks and demos (``python -m tidings.connectors.smpp.smsc``).
"""

from tidings.connectors.smpp.connector import SmppConnector

__all__ = ["SmppConnector"]
