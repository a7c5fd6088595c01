"""The indexes the console's queries walk, declared beside them (migration 0006)."""

from __future__ import annotations

from sqlalchemy import Index, text

from tidings.messages.models import Message, MessageEvent

# Traffic charts and the latest failures count a time window of status changes by status.
# The hand-over and the final status are on the message row (migration 0016: no history row
# repeats them), so the windows are walked on these two partial indexes (only messages that
# have the time are in them), and the remaining history rows (`unknown`, a replaced final
# status) on the events' own index. Each grows at its end.
EVENTS_BY_TIME = Index("ix_message_events_at_status", MessageEvent.at, MessageEvent.status)
SENT_BY_TIME = Index(
    "ix_messages_time_sent",
    Message.time_sent,
    sqlite_where=text("time_sent IS NOT NULL"),
    postgresql_where=text("time_sent IS NOT NULL"),
)
FINAL_BY_TIME = Index(
    "ix_messages_time_dr",
    Message.time_dr,
    Message.status,
    sqlite_where=text("time_dr IS NOT NULL"),
    postgresql_where=text("time_dr IS NOT NULL"),
)
# The search by phone number.
MESSAGES_BY_MSISDN = Index("ix_messages_msisdn", Message.msisdn, Message.id)
