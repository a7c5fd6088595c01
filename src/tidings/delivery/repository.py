"""The delivery path's statements: the dispatch queue, receipts and the parts of long messages.

Every statement a message meets on its way (claim, answer, receipt) is built once per dialect
(db/prebuilt.py) over the tables' Core columns and returns plain rows: building a statement
per call, or going through the ORM, cost more CPU than running it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    func,
    insert,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.connectors.base import OutboundMessage
from tidings.db.ids import allocate_ids
from tidings.db.prebuilt import POSTGRESQL, dialect_of, one_of_param, one_of_selected, one_of_values
from tidings.delivery.models import MessagePart, Receipt
from tidings.messages.models import Message
from tidings.wakeups import dispatch_channel, wake_after_commit

MESSAGES = cast(Table, Message.__table__)
RECEIPTS = cast(Table, Receipt.__table__)
PARTS = cast(Table, MessagePart.__table__)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    message_id: int
    attempts: int
    message: OutboundMessage  # what the connector needs of it, returned by the claim itself


# OutboundMessage's fields, in order.
_OUTBOUND_COLUMNS = (
    "id",
    "msisdn",
    "originator",
    "body",
    "encoding",
    "parts",
    "expires_at",
    "reference",
    "currency",
)


@functools.cache
def _claim(dialect: str) -> Update:
    t = MESSAGES
    claimable = (
        select(t.c.id)
        .where(
            t.c.supplier_id == bindparam("b_supplier"),
            t.c.due_at <= bindparam("b_now"),
            or_(t.c.locked_until.is_(None), t.c.locked_until < bindparam("b_now")),
        )
        .order_by(t.c.due_at, t.c.id)
        .limit(bindparam("b_limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        update(t)
        .where(one_of_selected(dialect, t.c.id, claimable))
        .values(locked_until=bindparam("b_lease"), attempts=t.c.attempts + 1)
        # The columns a connector needs (OutboundMessage's, in order) come back with the
        # lease: no second statement to read the rows just claimed.
        .returning(t.c.attempts, *(t.c[name] for name in _OUTBOUND_COLUMNS))
    )


@functools.cache
def _complete(dialect: str) -> Update:
    t = MESSAGES
    return (
        update(t)
        .where(one_of_param(dialect, t.c.id, "b_ids"), t.c.due_at.is_not(None))
        .values(due_at=None, locked_until=None)
    )


@functools.cache
def _retry_later(dialect: str) -> Update:
    t = MESSAGES
    # Core (not ORM) UPDATE, so that one executemany carries every row.
    return (
        update(t)
        .where(t.c.id == bindparam("job_id"))
        .values(due_at=bindparam("due"), locked_until=None, last_error=bindparam("error"))
    )


@functools.cache
def _repoint(dialect: str) -> Update:
    t = MESSAGES
    return (
        update(t)
        .where(t.c.id == bindparam("job_id"))
        .values(
            supplier_id=bindparam("to"),
            due_at=bindparam("due"),
            locked_until=None,
            last_error=bindparam("error"),
            attempts=t.c.attempts - bindparam("refund"),
        )
    )


@functools.cache
def _receipt_insert(dialect: str) -> Insert:
    return insert(RECEIPTS)


@functools.cache
def _reported(dialect: str) -> CompoundSelect[Any]:
    # The parts and the messages a report round's ids name, in one statement (two indexed
    # look-ups): (id, part row id, message id, seqnum, total), part row id NULL for a message.
    p, m = PARTS, MESSAGES
    return union_all(
        select(p.c.part_id, p.c.id, p.c.message_id, p.c.seqnum, p.c.total).where(
            p.c.supplier_id == bindparam("b_supplier"),
            one_of_param(dialect, p.c.part_id, "b_part_ids"),
        ),
        select(m.c.supplier_message_id, null(), m.c.id, null(), null()).where(
            m.c.supplier_id == bindparam("b_supplier"),
            one_of_param(dialect, m.c.supplier_message_id, "b_smids"),
        ),
    )


@functools.cache
def _mark_matched(dialect: str) -> Update:
    t = RECEIPTS
    return update(t).where(t.c.id == bindparam("receipt")).values(message_id=bindparam("mid"))


# What match_late_receipts needs of an unmatched receipt, in UnmatchedReceipt's order.
_RECEIPT_COLUMNS = ("id", "supplier_id", "supplier_message_id", "status", "detail", "received_at")


@dataclass(frozen=True, slots=True)
class UnmatchedReceipt:
    id: int
    supplier_id: int
    supplier_message_id: str
    status: str
    detail: str | None
    received_at: datetime


@functools.cache
def _newly_matchable(dialect: str, limited: bool, by_ids: bool, by_messages: bool) -> Select[Any]:
    """Waiting receipts whose supplier id now names a message (with that message's id)."""
    m = MESSAGES
    return _waiting_receipts(
        dialect, m, m.c.supplier_message_id, m.c.id, (m.c.id,), limited, by_ids, by_messages
    )


@functools.cache
def _unmatched_part_receipts(
    dialect: str, limited: bool, by_ids: bool, by_messages: bool
) -> Select[Any]:
    """Waiting receipts whose supplier id names a part of a long message."""
    p = PARTS
    return _waiting_receipts(
        dialect, p, p.c.part_id, p.c.message_id, (), limited, by_ids, by_messages
    )


def _waiting_receipts(
    dialect: str,
    target: Table,
    supplier_id_column: ColumnElement[Any],
    message_id_column: ColumnElement[Any],
    extra: tuple[ColumnElement[Any], ...],
    limited: bool,
    by_ids: bool,
    by_messages: bool,
) -> Select[Any]:
    """Unmatched receipts joined to `target` (messages or parts) by supplier and supplier
    message id, oldest first, optionally limited, by receipt ids or by message ids."""
    r = RECEIPTS
    joined = and_(
        target.c.supplier_id == r.c.supplier_id,
        supplier_id_column == r.c.supplier_message_id,
    )
    query = (
        select(*(r.c[name] for name in _RECEIPT_COLUMNS), *extra)
        .select_from(r.join(target, joined))
        .where(r.c.message_id.is_(None), r.c.received_at >= bindparam("b_since"))
        .order_by(r.c.id)
    )
    if limited:
        query = query.limit(bindparam("b_limit", type_=Integer))
    if by_ids:
        query = query.where(one_of_param(dialect, r.c.id, "b_ids"))
    if by_messages:
        query = query.where(one_of_param(dialect, message_id_column, "b_message_ids"))
    return query


def _unmatched_params(
    since: datetime,
    limit: int | None,
    ids: Sequence[int] | None,
    message_ids: Sequence[int] | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"b_since": since}
    if limit is not None:
        params["b_limit"] = limit
    if ids is not None:
        params.update(one_of_values("b_ids", ids))
    if message_ids is not None:
        params.update(one_of_values("b_message_ids", message_ids))
    return params


@functools.cache
def _part_insert(dialect: str) -> Insert:
    return insert(PARTS)


@functools.cache
def _find_parts(dialect: str) -> Select[Any]:
    t = PARTS
    return select(t.c.part_id, t.c.id, t.c.message_id, t.c.seqnum, t.c.total).where(
        t.c.supplier_id == bindparam("b_supplier"),
        one_of_param(dialect, t.c.part_id, "b_part_ids"),
    )


@functools.cache
def _lock_messages_in_order(dialect: str) -> Select[Any]:
    t = MESSAGES
    return (
        select(t.c.id)
        .where(one_of_param(dialect, t.c.id, "b_ids"))
        .order_by(t.c.id)
        .with_for_update()
    )


@functools.cache
def _part_statuses(dialect: str) -> Select[Any]:
    t = PARTS
    columns = (t.c.message_id, t.c.seqnum, t.c.status)
    if dialect != POSTGRESQL:
        return select(*columns).where(t.c.message_id.in_(bindparam("b_ids", expanding=True)))
    # Without statistics `message_id = ANY(…)` looks like a good share of the table
    # (0.5 % per id), and a hash join or a sequential scan wins on paper. One index
    # look-up per message id instead: a LATERAL subquery that OFFSET keeps from being
    # flattened into a join can only be run per id, and per id the index is cheapest.
    wanted = (
        func.unnest(bindparam("b_ids", type_=ARRAY(BigInteger)))
        .table_valued("id")
        .render_derived(name="wanted")
    )
    per_id = select(*columns).where(t.c.message_id == wanted.c.id).offset(0).lateral()
    return select(per_id).select_from(wanted).join(per_id, true())


@functools.cache
def _set_part_statuses(dialect: str) -> Update:
    t = PARTS
    return update(t).where(t.c.id == bindparam("part")).values(status=bindparam("st"))


class DispatchRepository:
    """The dispatch queue: columns of `messages` (`due_at`, `locked_until`, `attempts`,
    `last_error`) and the partial index `ix_messages_dispatch`, not a table of its own.

    A message enters it with its insert (`due_at` set by the acceptance) and leaves it with
    the update that records it sent or final (`apply_changes` clears `due_at`): a job costs
    no row of its own, and the lease is a HOT update of the message.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def enqueued(self, supplier_ids: Iterable[int]) -> None:
        """Messages of these suppliers were inserted with `due_at` set: wake their lanes."""
        channels = {dispatch_channel(s) for s in supplier_ids}
        if channels:
            wake_after_commit(self.session, *channels)

    async def claim(
        self, supplier_id: int, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs of a supplier, oldest first.

        On PostgreSQL the inner SELECT takes row locks with SKIP LOCKED, so concurrent
        workers (other processes) each lease different jobs and never wait on each other.
        On SQLite the write lock taken by BEGIN IMMEDIATE serialises claims instead.
        """
        result = await self.session.execute(
            _claim(dialect_of(self.session)),
            {"b_supplier": supplier_id, "b_now": now, "b_limit": limit, "b_lease": lease_until},
        )
        return sorted(
            (ClaimedJob(row[1], row[0], OutboundMessage(*row[1:])) for row in result),
            key=lambda job: job.message_id,
        )

    async def complete(self, message_ids: Iterable[int]) -> None:
        """Take these messages out of the queue, where `apply_changes` has not already (it
        does for every message it records sent or final): usually no row is written."""
        ids = list(message_ids)
        if ids:
            await self.session.execute(
                _complete(dialect_of(self.session)), one_of_values("b_ids", ids)
            )

    async def remove_unleased(self, message_id: int, now: datetime) -> bool:
        """Take a message no worker holds out of the queue (cancelling); False when it is
        not in it or leased."""
        messages = MESSAGES
        result = await self.session.execute(
            update(messages)
            .where(
                messages.c.id == message_id,
                messages.c.due_at.is_not(None),
                or_(messages.c.locked_until.is_(None), messages.c.locked_until < now),
            )
            .values(due_at=None, locked_until=None)
        )
        return bool(getattr(result, "rowcount", 0))

    async def retry_later(self, retries: Sequence[tuple[int, datetime, str]]) -> None:
        """Release leased jobs to run again at a later time: (message_id, due_at, error)."""
        if not retries:
            return
        await self.session.execute(
            _retry_later(dialect_of(self.session)),
            [{"job_id": m, "due": due, "error": error[:200]} for m, due, error in retries],
        )

    async def repoint(self, moves: Sequence[tuple[int, int, datetime, str, int]]) -> None:
        """Hand leased jobs to another supplier (failover) or back to their own for later:
        (message_id, supplier_id, due_at, why, attempts to give back). A job moved without
        being tried (a supplier out of routing) gives its claim's attempt back."""
        if not moves:
            return
        await self.session.execute(
            _repoint(dialect_of(self.session)),
            [
                {"job_id": m, "to": s, "due": due, "error": error[:200], "refund": refund}
                for m, s, due, error, refund in moves
            ],
        )


class ReceiptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(self, rows: Sequence[dict[str, object]]) -> list[int]:
        if not rows:
            return []
        ids = await allocate_ids(self.session, RECEIPTS, len(rows))
        await self.session.execute(
            _receipt_insert(dialect_of(self.session)),
            [{**row, "id": id_} for id_, row in zip(ids, rows, strict=True)],
        )
        return ids

    async def reported(
        self, supplier_id: int, supplier_message_ids: Iterable[str]
    ) -> tuple[dict[str, PartRow], dict[str, int]]:
        """What the ids a supplier reported about name: parts of long messages (as
        `PartRepository.find`), and messages (our message id of each), both in one statement.
        """
        ids = list(set(supplier_message_ids))
        if not ids:
            return {}, {}
        result = await self.session.execute(
            _reported(dialect_of(self.session)),
            {
                "b_supplier": supplier_id,
                **one_of_values("b_part_ids", ids),
                **one_of_values("b_smids", ids),
            },
        )
        parts: dict[str, PartRow] = {}
        messages: dict[str, int] = {}
        for reported_id, part_id, message_id, seqnum, total in result:
            if part_id is None:
                messages[reported_id] = message_id
            else:
                parts[reported_id] = PartRow(part_id, message_id, seqnum, total)
        return parts, messages

    async def mark_matched(self, matches: Sequence[tuple[int, int]]) -> None:
        """(receipt_id, message_id) pairs."""
        if not matches:
            return
        await self.session.execute(
            _mark_matched(dialect_of(self.session)),
            [{"receipt": receipt_id, "mid": message_id} for receipt_id, message_id in matches],
        )

    async def newly_matchable(
        self,
        since: datetime,
        limit: int | None,
        ids: Sequence[int] | None = None,
        message_ids: Sequence[int] | None = None,
    ) -> list[tuple[UnmatchedReceipt, int]]:
        """Unmatched receipts whose message now carries their supplier id (of ``ids``, or about
        ``message_ids``, only, when given), each with that message's id.

        A receipt and the submit answer it belongs to can be written by two transactions at
        once; under READ COMMITTED neither sees the other, so both miss the match. This
        catches those up (and any left by a crash between the two).
        """
        query = _newly_matchable(
            dialect_of(self.session), limit is not None, ids is not None, message_ids is not None
        )
        result = await self.session.execute(
            query, _unmatched_params(since, limit, ids, message_ids)
        )
        return [(UnmatchedReceipt(*row[:6]), row[6]) for row in result]


@dataclass(frozen=True, slots=True)
class PartRow:
    id: int
    message_id: int
    seqnum: int
    total: int


class PartRepository:
    """The parts of long messages (``message_parts``): their supplier ids and statuses."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unmatched_receipts(
        self,
        since: datetime,
        limit: int | None,
        ids: Sequence[int] | None = None,
        message_ids: Sequence[int] | None = None,
    ) -> list[UnmatchedReceipt]:
        """Unmatched receipts about a known part: one whose transaction raced the one that
        recorded the parts (READ COMMITTED: neither saw the other), as newly_matchable."""
        query = _unmatched_part_receipts(
            dialect_of(self.session), limit is not None, ids is not None, message_ids is not None
        )
        result = await self.session.execute(
            query, _unmatched_params(since, limit, ids, message_ids)
        )
        return [UnmatchedReceipt(*row) for row in result]

    async def add(self, supplier_id: int, messages: Sequence[tuple[int, Sequence[str]]]) -> None:
        """(message_id, every part's id in order) of messages a supplier took."""
        rows = [
            {
                "message_id": message_id,
                "supplier_id": supplier_id,
                "part_id": part_id,
                "seqnum": seqnum,
                "total": len(part_ids),
                "status": None,
            }
            for message_id, part_ids in messages
            for seqnum, part_id in enumerate(part_ids, 1)
        ]
        if rows:
            await self.session.execute(_part_insert(dialect_of(self.session)), rows)

    async def find(self, supplier_id: int, part_ids: Iterable[str]) -> dict[str, PartRow]:
        wanted = list(set(part_ids))
        if not wanted:
            return {}
        result = await self.session.execute(
            _find_parts(dialect_of(self.session)),
            {"b_supplier": supplier_id, **one_of_values("b_part_ids", wanted)},
        )
        return {row[0]: PartRow(row[1], row[2], row[3], row[4]) for row in result}

    async def statuses(self, message_ids: Iterable[int]) -> dict[int, dict[int, str | None]]:
        """Each message's parts: seqnum -> the status its last report gave.

        The messages are locked first (FOR UPDATE, in id order, as apply_changes locks them):
        two transactions settling different parts of one message at once would otherwise
        each miss the other's part and leave it "sent" (PostgreSQL, several report writers).
        """
        ids = sorted(set(message_ids))
        dialect = dialect_of(self.session)
        await self.session.execute(_lock_messages_in_order(dialect), one_of_values("b_ids", ids))
        result = await self.session.execute(_part_statuses(dialect), {"b_ids": ids})
        found: dict[int, dict[int, str | None]] = {}
        for message_id, seqnum, status in result:
            found.setdefault(message_id, {})[seqnum] = status
        return found

    async def set_statuses(self, statuses: dict[int, str]) -> None:
        """Part row id -> its new status."""
        if not statuses:
            return
        await self.session.execute(
            _set_part_statuses(dialect_of(self.session)),
            [{"part": part, "st": status} for part, status in statuses.items()],
        )
