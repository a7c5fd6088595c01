"""Imports every model so that `Base.metadata` is complete (Alembic, tests)."""

from tidings.accounts.models import ApiKey, Client
from tidings.billing.models import LedgerEntry, Price
from tidings.db.base import Base
from tidings.delivery.models import DispatchJob, Receipt
from tidings.messages.models import Message, MessageEvent, Task
from tidings.routing.models import Route, Supplier
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

__all__ = [
    "ApiKey",
    "Base",
    "Client",
    "DispatchJob",
    "LedgerEntry",
    "Message",
    "MessageEvent",
    "Price",
    "Receipt",
    "Route",
    "Supplier",
    "Task",
    "WebhookAttempt",
    "WebhookDelivery",
]
