"""The `Status` words of an export (seed 004's capitalised list) and what each one selects.

A row's word is the status API's word (`api/client/statuses.py`) as the seed's list spells it
(capitalised, but "not-viber-user"), so an export and `GET /rest/sms/{id}` never disagree. The
filter accepts every word of the seed's list, in any case; words for states Tidings has no
message in (Moderation, Sending) select nothing.
"""

from __future__ import annotations

from types import MappingProxyType

from tidings.api.client.statuses import SEED_004_STATUS

# The seed's list, in its order. Moderation (a campaign waiting for approval) and Sending have
# no counterpart in our status machine: a queued message reads "Accepted", as in the status
# API. Read and not-viber-user are Viber's final statuses (`read`, `not_viber_user`).
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
_SEED_SPELLING = {word.lower(): word for word in SEED_WORDS}

# Stored status -> the row's word, spelt as the seed's list spells it: capitalised, except
# Viber's "not-viber-user", which the seed writes in lower case (in its list and its rows).
STATUS_WORD: MappingProxyType[str, str] = MappingProxyType(
    {
        status.value: _SEED_SPELLING.get(word, word.capitalize())
        for status, word in SEED_004_STATUS.items()
    }
)


def _selects(word: str) -> tuple[str, ...]:
    return tuple(sorted(status for status, shown in STATUS_WORD.items() if shown == word))


# Lower-case word -> the stored statuses it selects (empty: a valid word that matches nothing).
STATUS_FILTER: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {word.lower(): _selects(word) for word in SEED_WORDS}
)
