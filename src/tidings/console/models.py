"""The indexes the console's queries walk, declared beside them (migration 0006)."""

from __future__ import annotations

from sqlalchemy import Index

from tidings.messages.models import Message, MessageEvent

# Traffic charts and the latest failures count a time window of events by status: an
# index-only range scan. Events are appended in time order, so the index grows at its end.
EVENTS_BY_TIME = Index("ix_message_events_at_status", MessageEvent.at, MessageEvent.status)
# The search by phone number.
MESSAGES_BY_MSISDN = Index("ix_messages_msisdn", Message.msisdn, Message.id)
