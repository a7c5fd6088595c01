"""Imports every model so that `Base.metadata` is complete (Alembic, tests)."""

from tidings.accounts.models import ApiKey, Client
from tidings.billing.models import LedgerEntry, Price
from tidings.db.base import Base
from tidings.delivery.models import DispatchJob, Receipt
from tidings.exports.models import Export
from tidings.messages.models import Message, MessageEvent, Task
from tidings.routing.models import Route, Supplier
from tidings.smpp_server.models import SmppReceipt
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

__all__ = [
    "ApiKey",
    "Base",
    "Client",
    "DispatchJob",
    "Export",
    "LedgerEntry",
    "Message",
    "MessageEvent",
    "Price",
    "Receipt",
    "Route",
    "SmppReceipt",
    "Supplier",
    "Task",
    "WebhookAttempt",
    "WebhookDelivery",
]
