"""The `Status` words of an export (seed 004's capitalised list) and what each one selects.

A row's word is the status API's word (`api/client/statuses.py`), capitalised, so an export
and `GET /rest/sms/{id}` never disagree. The filter accepts every word of the seed's list;
words for states Tidings has no message in (yet) select nothing.
"""

from __future__ import annotations

from types import MappingProxyType

from tidings.api.client.statuses import SEED_004_STATUS

STATUS_WORD: MappingProxyType[str, str] = MappingProxyType(
    {status.value: word.capitalize() for status, word in SEED_004_STATUS.items()}
)

# The seed's list, in its order. Moderation (a campaign waiting for approval) and Sending have
# no counterpart in our status machine: a queued message reads "Accepted", as in the status
# API. Read and not-viber-user are Viber's and select Viber messages once they exist.
SEED_WORDS = (
    "Delivered",
    "Rejected",
    "Scheduled",
    "Moderation",
    "Accepted",
    "Sending",
    "Sent",
    "Expired",
    "Failed",
    "Undelivered",
    "Unknown",
    "Read",
    "not-viber-user",
)


def _selects(word: str) -> tuple[str, ...]:
    return tuple(sorted(status for status, shown in STATUS_WORD.items() if shown == word))


# Lower-case word -> the stored statuses it selects (empty: a valid word that matches nothing).
STATUS_FILTER: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {word.lower(): _selects(word) for word in SEED_WORDS}
)
