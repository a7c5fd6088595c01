"""Recording what suppliers answer and report, and closing what outlives its validity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.clock import Clock
from tidings.connectors.base import OutboundMessage, SubmitOutcome, SubmitResult, SupplierReport
from tidings.db.statistics import analyze_grown_tables
from tidings.delivery.parts import PartReport, settle_parts
from tidings.delivery.repository import (
    ClaimedJob,
    DispatchRepository,
    PartRepository,
    ReceiptRepository,
)
from tidings.messages.changes import AppliedChange, StatusChange
from tidings.messages.repository import MessageRepository
from tidings.messages.service import apply_changes
from tidings.messages.status import IN_FLIGHT_STATUSES, PENDING_STATUSES, Status
from tidings.numbering import InvalidMsisdn, parse_msisdn
from tidings.routing.plan import RoutingPlan
from tidings.viber.repository import ViberRepository
from tidings.wakeups import dispatch_channel, wake_after_commit_in


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay: float = 2.0
    max_delay: float = 300.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.max_delay))
        return float(min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    """Leased jobs split into what to submit and what has run out of time already."""

    to_send: list[OutboundMessage]
    attempts: dict[int, int]
    expired: list[int]


async def claim_batch(
    session: AsyncSession, clock: Clock, supplier_id: int, limit: int, lease_seconds: float
) -> ClaimedBatch:
    now = clock.now()
    jobs: list[ClaimedJob] = await DispatchRepository(session).claim(
        supplier_id, now, now + timedelta(seconds=lease_seconds), limit
    )
    if not jobs:
        return ClaimedBatch([], {}, [])
    to_send: list[OutboundMessage] = []
    expired: list[int] = []
    for message in (job.message for job in jobs):  # in id order
        if message.expires_at <= now:
            expired.append(message.message_id)
        else:
            to_send.append(message)
    return ClaimedBatch(to_send, {job.message_id: job.attempts for job in jobs}, expired)


async def record_outcomes(
    session: AsyncSession,
    clock: Clock,
    supplier_id: int,
    batch: ClaimedBatch,
    outcomes: Sequence[SubmitOutcome],
    policy: RetryPolicy,
    *,
    plan: RoutingPlan | None = None,
) -> list[AppliedChange]:
    """Write the supplier's answers for a claimed batch, in the worker's transaction.

    With a routing `plan`, a message the supplier could not take (a temporary failure) goes
    to the next candidate supplier at once, its job re-pointed in this same transaction and
    the attempt written to its history (docs/routing.md); without one, or with no next
    candidate, it is retried here later."""
    now = clock.now()
    changes: list[StatusChange] = [
        StatusChange(mid, Status.EXPIRED, now, detail="validity ended before sending")
        for mid in batch.expired
    ]
    done: list[int] = list(batch.expired)
    retries: list[tuple[int, datetime, str]] = []
    long: list[tuple[int, Sequence[str]]] = []  # (message, its parts' ids) taken part by part
    answered = {outcome.message_id for outcome in outcomes}
    # A connector that forgets a message gets it back to retry, never silently dropped.
    missing = [
        SubmitOutcome(m.message_id, SubmitResult.RETRY, error="no answer from connector")
        for m in batch.to_send
        if m.message_id not in answered
    ]
    expires = {m.message_id: m.expires_at for m in batch.to_send}
    sending = {m.message_id: m for m in batch.to_send}
    failover = _Failover(plan, supplier_id, now)
    for outcome in [*outcomes, *missing]:
        mid = outcome.message_id
        if mid not in expires:
            continue
        if outcome.result is SubmitResult.ACCEPTED and outcome.supplier_message_id:
            changes.append(
                StatusChange(
                    mid,
                    Status.SENT,
                    now,
                    supplier_message_id=outcome.supplier_message_id,
                    sent=True,
                )
            )
            if len(outcome.part_ids) > 1:
                long.append((mid, outcome.part_ids))
            done.append(mid)
        elif outcome.result is SubmitResult.REJECTED:
            changes.append(StatusChange(mid, Status.REJECTED, now, detail=_short(outcome.error)))
            done.append(mid)
        else:
            attempts = batch.attempts.get(mid, 1)
            due = now + timedelta(seconds=policy.delay(attempts, outcome.retry_after))
            error = _short(outcome.error) or "temporary failure"
            if attempts >= policy.max_attempts or due >= expires[mid]:
                changes.append(StatusChange(mid, Status.FAILED, now, detail=f"gave up: {error}"))
                done.append(mid)
            elif not failover.move(sending[mid], f"attempt {attempts}", error):
                retries.append((mid, due, error))
    applied = await apply_changes(session, clock, changes)
    jobs = DispatchRepository(session)
    await jobs.complete(_still_queued(done, applied))
    await jobs.retry_later(retries)
    await failover.write(session)
    if retries:
        soonest = min(due for _, due, _ in retries)
        wake_after_commit_in(
            session, dispatch_channel(supplier_id), (soonest - now).total_seconds()
        )
    if long:
        await PartRepository(session).add(supplier_id, long)
    return applied


def _still_queued(done: Sequence[int], applied: Sequence[AppliedChange]) -> list[int]:
    """Of messages whose dispatch job is done, those that may still be in the queue.

    A change to `sent` or to a final status that `apply_changes` applied took its message
    out of the queue itself (its record's `due_at` is None: the row, locked by this
    transaction, was written so), and every change made for `done` is one of those. Only
    the messages whose change did not apply (a status that allows no such move) still need
    `DispatchRepository.complete`; usually none, and the statement is not sent at all.
    """
    cleared = {a.message.id for a in applied if a.message.due_at is None}
    return [message_id for message_id in done if message_id not in cleared]


class _Failover:
    """Messages of one batch moving to another supplier: their jobs, their supplier and
    cost, and a line in their history each; written with three statements per batch."""

    def __init__(self, plan: RoutingPlan | None, supplier_id: int, now: datetime) -> None:
        self.plan = plan
        self.supplier_id = supplier_id
        self.now = now
        self.moves: list[tuple[int, int, datetime, str, int]] = []
        self.columns: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    def move(
        self, message: OutboundMessage, what: str, error: str, *, draining: bool = False
    ) -> bool:
        """Move one message to its next candidate; False when there is none."""
        if self.plan is None:
            return False
        try:
            destination = parse_msisdn(message.msisdn)
        except InvalidMsisdn:
            return False
        candidate = self.plan.failover(destination, self.supplier_id, draining=draining)
        if candidate is None:
            return False
        here, there = self.plan.name(self.supplier_id), self.plan.name(candidate.supplier_id)
        why = f"{what} via {here}: {error}; moved to {there}"
        self.moves.append((message.message_id, candidate.supplier_id, self.now, why, 0))
        cost, currency = self.plan.message_cost(candidate.cost, message.parts, message.currency)
        self.columns[message.message_id] = {
            "supplier_id": candidate.supplier_id,
            "cost": cost,
            "cost_currency": currency,
        }
        self.events.append(
            {
                "message_id": message.message_id,
                "status": Status.QUEUED.value,
                "detail": why[:200],
                "at": self.now,
            }
        )
        return True

    def stay(self, message_id: int, until: datetime, why: str) -> None:
        """Leave an untried message with its supplier until `until` (its probe)."""
        self.moves.append((message_id, self.supplier_id, until, why, 1))

    async def write(self, session: AsyncSession) -> None:
        if not self.moves:
            return
        # Untried moves give their attempt back (the last field); tried ones keep it.
        await DispatchRepository(session).repoint(self.moves)
        messages = MessageRepository(session)
        await messages.update_columns(self.columns)
        await messages.add_events(self.events)


async def drain_batch(
    session: AsyncSession,
    clock: Clock,
    supplier_id: int,
    batch: ClaimedBatch,
    plan: RoutingPlan,
    reason: str,
    until: datetime,
) -> tuple[list[AppliedChange], int]:
    """Hand the claimed jobs of a supplier out of routing to their next candidates, untried;
    those with none wait for the probe (`until`). Expired ones expire."""
    now = clock.now()
    failover = _Failover(plan, supplier_id, now)
    for message in batch.to_send:
        if not failover.move(message, "out of routing", reason, draining=True):
            failover.stay(message.message_id, until, f"out of routing: {reason}")
    # A move of an untried message gives its attempt back too.
    failover.moves = [(m, s, d, w, 1) for m, s, d, w, _ in failover.moves]
    changes = [
        StatusChange(mid, Status.EXPIRED, now, detail="validity ended before sending")
        for mid in batch.expired
    ]
    applied = await apply_changes(session, clock, changes)
    await DispatchRepository(session).complete(_still_queued(batch.expired, applied))
    await failover.write(session)
    return applied, sum(1 for _, s, _, _, _ in failover.moves if s != supplier_id)


async def apply_early_receipts(
    session: AsyncSession, clock: Clock, outcomes: Sequence[SubmitOutcome]
) -> list[AppliedChange]:
    """Apply receipts that arrived before these submit answers were recorded.

    Call it in a transaction of its own, after the one of `record_outcomes` committed: a
    report round that raced that transaction (READ COMMITTED: neither saw the other) has
    either committed by now, and its receipts are found here, or commits later and finds
    the answers itself (`match_late_receipts` after its round).
    """
    accepted = [o for o in outcomes if o.result is SubmitResult.ACCEPTED and o.supplier_message_id]
    if not accepted:
        return []
    return await match_late_receipts(
        session,
        clock,
        limit=None,
        message_ids=[o.message_id for o in accepted],
        # Parts are recorded only for an answer with several part ids (record_outcomes);
        # the parts another answer recorded are looked for by its own lane's call.
        long_message_ids=[o.message_id for o in accepted if len(o.part_ids) > 1],
    )


@dataclass(frozen=True, slots=True)
class IngestResult:
    receipt_ids: list[int]
    matched: list[bool]
    applied: list[AppliedChange]

    @property
    def unmatched_ids(self) -> list[int]:
        """The stored receipts that matched no message (yet)."""
        return [i for i, matched in zip(self.receipt_ids, self.matched, strict=True) if not matched]


async def ingest_reports(
    session: AsyncSession, clock: Clock, supplier_id: int, reports: Sequence[SupplierReport]
) -> IngestResult:
    """Store every report, apply those whose message is known, keep the rest for later."""
    receipts = ReceiptRepository(session)
    now = clock.now()
    known_parts, known_messages = await receipts.reported(
        supplier_id, (r.supplier_message_id for r in reports)
    )
    # Parts of long messages first: the first part's id is also the message's own.
    parts = await settle_parts(
        session,
        supplier_id,
        [PartReport(r.supplier_message_id, r.status, r.at or now, r.detail) for r in reports],
        known_parts,
    )
    matches = {
        reported: message_id
        for reported, message_id in known_messages.items()
        if reported not in parts.message_of
    }
    matches.update(parts.message_of)
    ids = await receipts.add_many(
        [
            {
                "supplier_id": supplier_id,
                "supplier_message_id": r.supplier_message_id,
                "status": r.status.value,
                "detail": _short(r.detail),
                "received_at": r.at or now,
                "message_id": matches.get(r.supplier_message_id),
            }
            for r in reports
        ]
    )
    applied = await apply_changes(
        session,
        clock,
        [
            StatusChange(matches[r.supplier_message_id], r.status, r.at or now, _short(r.detail))
            for r in reports
            if r.supplier_message_id in matches and r.supplier_message_id not in parts.message_of
        ]
        + parts.changes,
    )
    return IngestResult(
        receipt_ids=ids,
        matched=[r.supplier_message_id in matches for r in reports],
        applied=applied,
    )


async def sweep_expired(
    session: AsyncSession, clock: Clock, *, grace_seconds: int, limit: int = 1000
) -> list[AppliedChange]:
    """Expire what never left before its validity ended, and close what never got a report.

    First, on PostgreSQL, tables that outgrew their statistics are analyzed (before this
    transaction locks any row): plans cached while they were small are made again.
    """
    await analyze_grown_tables(session)
    now = clock.now()
    messages = MessageRepository(session)
    pending = await messages.expiring_unleased(PENDING_STATUSES, now, limit)
    silent = await messages.expiring(
        IN_FLIGHT_STATUSES, now - timedelta(seconds=grace_seconds), limit
    )
    changes = [
        StatusChange(mid, Status.EXPIRED, now, detail="validity ended before sending")
        for mid in pending
    ] + [
        StatusChange(mid, Status.EXPIRED, now, detail="no final report before validity ended")
        for mid in silent
    ]
    # Viber's TTL is the provider's own: past it nothing more comes, so no grace (and the
    # SMS alternative, if any, goes out now: apply_changes starts it).
    viber_silent = await ViberRepository(session).in_flight_past_ttl(IN_FLIGHT_STATUSES, now, limit)
    changes += [
        StatusChange(mid, Status.EXPIRED, now, detail="no final Viber report within its TTL")
        for mid in viber_silent
    ]
    applied = await apply_changes(session, clock, changes)
    await DispatchRepository(session).complete(_still_queued(pending, applied))
    applied.extend(await match_late_receipts(session, clock, limit=limit))
    return applied


# Receipts older than this that still match nothing are for ids we never gave out.
UNMATCHED_RECEIPT_WINDOW = timedelta(days=3)


async def match_late_receipts(
    session: AsyncSession,
    clock: Clock,
    *,
    limit: int | None = 1000,
    ids: Sequence[int] | None = None,
    message_ids: Sequence[int] | None = None,
    long_message_ids: Sequence[int] | None = None,
) -> list[AppliedChange]:
    """Apply unmatched receipts whose message is known now: all of them (up to ``limit``), or
    only those with these receipt ``ids``, or only those about these ``message_ids``. With
    ``message_ids``, ``long_message_ids`` may tell which of them can have parts: receipts
    about parts are looked for only of those (none: the look-up is not made).

    The sweeper runs it over everything now and then. Right after committing, whoever wrote
    an unmatched receipt (a report round) or a supplier's submit answers (a lane) runs it
    again for what it wrote: of two such transactions that raced, the later to commit sees the
    other's rows then, so a receipt that beat its submit answer is applied at once rather than
    at the next sweep.
    """
    receipts = ReceiptRepository(session)
    since = clock.now() - UNMATCHED_RECEIPT_WINDOW
    found = await receipts.newly_matchable(since, limit, ids, message_ids)
    parts_of = message_ids if long_message_ids is None else long_message_ids
    of_parts = (
        await PartRepository(session).unmatched_receipts(since, limit, ids, parts_of)
        if parts_of is None or parts_of
        else []
    )
    if not found and not of_parts:
        return []
    changes: list[StatusChange] = []
    matched: list[tuple[int, int]] = []
    for supplier_id in {r.supplier_id for r in of_parts}:  # a first part's id is its message's
        mine = [r for r in of_parts if r.supplier_id == supplier_id]
        parts = await settle_parts(
            session,
            supplier_id,
            [
                PartReport(r.supplier_message_id, Status(r.status), r.received_at, r.detail)
                for r in mine
            ],
        )
        changes += parts.changes
        matched += [(r.id, parts.message_of[r.supplier_message_id]) for r in mine]
    settled = {receipt_id for receipt_id, _ in matched}
    plain = [(r, message_id) for r, message_id in found if r.id not in settled]
    matched += [(r.id, message_id) for r, message_id in plain]
    changes += [
        StatusChange(message_id, Status(r.status), r.received_at, r.detail)
        for r, message_id in plain
    ]
    # Messages first, then receipts, in every path that does both (two post-commit looks at
    # the same receipt, or one and the sweeper, would otherwise deadlock on PostgreSQL).
    applied = await apply_changes(session, clock, changes)
    await receipts.mark_matched(matched)
    return applied


async def cancel_unsent(
    session: AsyncSession, clock: Clock, message_id: int, client_id: int, detail: str
) -> bool:
    """Cancel a client's message no supplier has yet (SMPP cancel_sm): rejected, refunded.

    False when it is not this client's, has left or is being handed over right now (a
    worker holds its job), or is final already.
    """
    found = await MessageRepository(session).lock_for_update([message_id])
    message = found[0] if found else None
    if message is None or message.client_id != client_id:
        return False
    if Status(message.status) not in PENDING_STATUSES:
        return False
    now = clock.now()
    if not await DispatchRepository(session).remove_unleased(message_id, now):
        return False
    await apply_changes(session, clock, [StatusChange(message_id, Status.REJECTED, now, detail)])
    return True


def _short(text: str | None) -> str | None:
    return None if text is None else text[:200]


async def hold_back(
    session: AsyncSession,
    clock: Clock,
    supplier_id: int,
    message_ids: Sequence[int],
    seconds: float,
    why: str,
) -> None:
    """Put claimed jobs back on their supplier's queue, due in `seconds`, without counting
    the claim as an attempt: our own limit held them back, the supplier never saw them, so
    this may neither use up their retries nor move them elsewhere (failover) nor count
    against the supplier's health."""
    due = clock.now() + timedelta(seconds=seconds)
    await DispatchRepository(session).repoint(
        [(message_id, supplier_id, due, why, 1) for message_id in message_ids]
    )
    wake_after_commit_in(session, dispatch_channel(supplier_id), seconds)
