"""Recording what HLR providers answered: results, pending queries, retries, give-ups.

Runs in the worker's second transaction for a claimed batch. Only lookups still leased to
this claim change (a worker whose lease ran out and was taken over records nothing). A final
result is pushed to the callback URL (the request's, else the client's) in the same
transaction, on seed 004's schedule. A lookup no provider ever answered is `failed` and
refunded: we are charged by a provider only for what it took.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.connectors.hlr.base import FAILED, UNKNOWN, HlrAnswer, Outcome
from tidings.hlr.repository import ClaimedLookup, FinishedLookup, HlrRepository
from tidings.hlr.wire import result_body
from tidings.webhooks.service import ClientEvent, enqueue_client_events

RESULT_EVENT = "hlr.result"

_FINAL_COLUMNS = (
    "status",
    "network",
    "ported",
    "roaming",
    "status_at",
    "sent_at",
    "provider_ref",
    "due_at",
    "locked_until",
    "attempts",
    "last_error",
)
_AGAIN_COLUMNS = ("provider_ref", "sent_at", "due_at", "locked_until", "attempts", "last_error")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Temporary failures back off exponentially; a provider that keeps a query pending is
    asked every `poll_seconds` until `result_timeout` after acceptance."""

    base_seconds: float = 2.0
    max_delay_seconds: float = 300.0
    max_attempts: int = 10
    poll_seconds: float = 2.0
    result_timeout: float = 3600.0

    def delay(self, attempts: int) -> float:
        delay: float = self.base_seconds * 2 ** max(attempts - 1, 0)
        return min(delay, self.max_delay_seconds)


@dataclass(frozen=True, slots=True)
class Recorded:
    finished: int
    pending: int
    retried: int


async def record_answers(
    session: AsyncSession,
    clock: Clock,
    lease: datetime,
    claimed: Sequence[ClaimedLookup],
    answers: Mapping[int, HlrAnswer],
    policy: RetryPolicy,
) -> Recorded:
    """Store the answers to a claimed batch; a lookup with no answer counts as a retry."""
    now = clock.now()
    final: list[dict[str, object]] = []
    again: list[dict[str, object]] = []
    gave_up: list[int] = []
    for lookup in claimed:
        answer = answers.get(lookup.id) or HlrAnswer(lookup.id, Outcome.RETRY, error="no answer")
        ref = answer.provider_ref or lookup.provider_ref
        sent_at = lookup.sent_at or now
        if answer.outcome is Outcome.RESULT and answer.result is not None:
            result = answer.result
            final.append(
                _final(lookup.id, result.status, now, sent_at, ref, answer.error)
                | {"network": result.network, "ported": result.ported, "roaming": result.roaming}
            )
            continue
        if answer.outcome is Outcome.PENDING:
            if now >= lookup.created_at + timedelta(seconds=policy.result_timeout):
                # The provider has it and may charge for it: the answer is unknown, not a refund.
                final.append(_final(lookup.id, UNKNOWN, now, sent_at, ref, "no result in time"))
                continue
            again.append(
                {
                    "lookup_id": lookup.id,
                    "provider_ref": ref,
                    "sent_at": sent_at,
                    "due_at": now + timedelta(seconds=policy.poll_seconds),
                    "locked_until": None,
                    "attempts": 0,
                    "last_error": None,
                }
            )
            continue
        error = (answer.error or "temporary failure")[:200]
        if lookup.attempts >= policy.max_attempts:
            gave_up.append(lookup.id)
            final.append(_final(lookup.id, FAILED, now, lookup.sent_at, ref, error))
            continue
        again.append(
            {
                "lookup_id": lookup.id,
                "provider_ref": ref,
                "sent_at": lookup.sent_at,
                "due_at": now + timedelta(seconds=policy.delay(lookup.attempts)),
                "locked_until": None,
                "attempts": lookup.attempts,
                "last_error": error,
            }
        )
    repo = HlrRepository(session)
    done = await repo.update_held(lease, final, _FINAL_COLUMNS)
    changed = await repo.update_held(lease, again, _AGAIN_COLUMNS)
    finished = await repo.finished(done)
    given_up = set(gave_up)
    refunds = [lookup for lookup in finished if lookup.id in given_up]
    await _refund(session, now, refunds)
    await enqueue_client_events(
        session,
        clock,
        [
            ClientEvent(
                lookup.client_id,
                RESULT_EVENT,
                orjson.dumps(result_body(lookup)).decode(),
                lookup.callback_url,
            )
            for lookup in finished
        ],
    )
    pending = sum(1 for row in again if row["attempts"] == 0 and row["lookup_id"] in changed)
    return Recorded(len(done), pending, len(changed) - pending)


def _final(
    lookup_id: int,
    status: str,
    now: datetime,
    sent_at: datetime | None,
    ref: str | None,
    error: str | None,
) -> dict[str, object]:
    return {
        "lookup_id": lookup_id,
        "status": status,
        "network": None,
        "ported": False,
        "roaming": False,
        "status_at": now,
        "sent_at": sent_at,
        "provider_ref": ref,
        "due_at": None,
        "locked_until": None,
        "attempts": 0,
        "last_error": error,
    }


async def _refund(session: AsyncSession, now: datetime, lookups: Sequence[FinishedLookup]) -> None:
    clients = ClientRepository(session)
    entries: list[tuple[int, Decimal, str, str | None]] = []
    for lookup in lookups:
        if lookup.price:
            await clients.credit(lookup.client_id, lookup.price)
            entries.append((lookup.client_id, lookup.price, "refund", f"hlr:{lookup.id}"))
    await LedgerRepository(session).add_many(entries, now)
