"""Imports every model so that `Base.metadata` is complete (Alembic, tests)."""

from tidings.accounts.models import ApiKey, Client
from tidings.billing.models import LedgerEntry, Price
from tidings.console import models as console_indexes  # noqa: F401  (its indexes)
from tidings.db.base import Base
from tidings.delivery.models import DispatchJob, MessagePart, Receipt, SupplierRateBucket
from tidings.exports.models import Export, ExportFile, ExportFileChunk
from tidings.hlr.models import HlrLookup
from tidings.inbound.models import InboundMessage, InboundPart, Number
from tidings.messages.models import Message, MessageEvent, Task
from tidings.operators.models import ConsoleSecret, Operator
from tidings.optouts.models import OptOut, OptOutSettings
from tidings.retention.models import MaintenanceRun
from tidings.routing.models import FxRate, Route, Supplier, SupplierCost, SupplierHealth
from tidings.smpp_server.models import SmppInboundPart, SmppReceipt, SmppReceiptRequest
from tidings.viber.models import ViberContent, ViberSender
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

__all__ = [
    "ApiKey",
    "Base",
    "Client",
    "ConsoleSecret",
    "DispatchJob",
    "Export",
    "ExportFile",
    "ExportFileChunk",
    "FxRate",
    "HlrLookup",
    "InboundMessage",
    "InboundPart",
    "LedgerEntry",
    "MaintenanceRun",
    "Message",
    "MessageEvent",
    "MessagePart",
    "Number",
    "Operator",
    "OptOut",
    "OptOutSettings",
    "Price",
    "Receipt",
    "Route",
    "SmppInboundPart",
    "SmppReceipt",
    "SmppReceiptRequest",
    "Supplier",
    "SupplierCost",
    "SupplierHealth",
    "SupplierRateBucket",
    "Task",
    "ViberContent",
    "ViberSender",
    "WebhookAttempt",
    "WebhookDelivery",
]
