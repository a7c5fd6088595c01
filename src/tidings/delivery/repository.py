from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.arrays import is_postgres, one_of, one_of_selected
from tidings.db.ids import allocate_ids
from tidings.delivery.models import MessagePart, Receipt
from tidings.messages.models import Message
from tidings.wakeups import dispatch_channel, wake_after_commit


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    message_id: int
    attempts: int


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
        claimable = (
            select(Message.id)
            .where(
                Message.supplier_id == supplier_id,
                Message.due_at <= now,
                or_(Message.locked_until.is_(None), Message.locked_until < now),
            )
            .order_by(Message.due_at, Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        messages = cast(Table, Message.__table__)
        result = await self.session.execute(
            update(messages)
            .where(one_of_selected(self.session, messages.c.id, claimable))
            .values(locked_until=lease_until, attempts=messages.c.attempts + 1)
            .returning(messages.c.id, messages.c.attempts)
        )
        return sorted(
            (ClaimedJob(message_id=row[0], attempts=row[1]) for row in result),
            key=lambda job: job.message_id,
        )

    async def complete(self, message_ids: Iterable[int]) -> None:
        """Take these messages out of the queue, where `apply_changes` has not already (it
        does for every message it records sent or final): usually no row is written."""
        ids = list(message_ids)
        if ids:
            messages = cast(Table, Message.__table__)
            await self.session.execute(
                update(messages)
                .where(one_of(self.session, messages.c.id, ids), messages.c.due_at.is_not(None))
                .values(due_at=None, locked_until=None)
            )

    async def remove_unleased(self, message_id: int, now: datetime) -> bool:
        """Take a message no worker holds out of the queue (cancelling); False when it is
        not in it or leased."""
        messages = cast(Table, Message.__table__)
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
        messages = cast(Table, Message.__table__)
        # Core (not ORM) UPDATE, so that one executemany carries every row.
        await self.session.execute(
            update(messages)
            .where(messages.c.id == bindparam("job_id"))
            .values(due_at=bindparam("due"), locked_until=None, last_error=bindparam("error")),
            [{"job_id": m, "due": due, "error": error[:200]} for m, due, error in retries],
        )

    async def repoint(self, moves: Sequence[tuple[int, int, datetime, str, int]]) -> None:
        """Hand leased jobs to another supplier (failover) or back to their own for later:
        (message_id, supplier_id, due_at, why, attempts to give back). A job moved without
        being tried (a supplier out of routing) gives its claim's attempt back."""
        if not moves:
            return
        messages = cast(Table, Message.__table__)
        await self.session.execute(
            update(messages)
            .where(messages.c.id == bindparam("job_id"))
            .values(
                supplier_id=bindparam("to"),
                due_at=bindparam("due"),
                locked_until=None,
                last_error=bindparam("error"),
                attempts=messages.c.attempts - bindparam("refund"),
            ),
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
        table = cast(Table, Receipt.__table__)
        ids = await allocate_ids(self.session, table, len(rows))
        await self.session.execute(
            insert(table), [{**row, "id": id_} for id_, row in zip(ids, rows, strict=True)]
        )
        return ids

    async def match_messages(
        self, supplier_id: int, supplier_message_ids: Iterable[str]
    ) -> dict[str, int]:
        """Our message ids for the ids a supplier gave us."""
        ids = list(set(supplier_message_ids))
        if not ids:
            return {}
        result = await self.session.execute(
            select(Message.supplier_message_id, Message.id).where(
                Message.supplier_id == supplier_id,
                one_of(self.session, Message.supplier_message_id, ids),
            )
        )
        return {row[0]: row[1] for row in result}

    async def mark_matched(self, matches: Sequence[tuple[int, int]]) -> None:
        """(receipt_id, message_id) pairs."""
        if not matches:
            return
        table = cast(Table, Receipt.__table__)
        await self.session.execute(
            update(table)
            .where(table.c.id == bindparam("receipt"))
            .values(message_id=bindparam("mid")),
            [{"receipt": receipt_id, "mid": message_id} for receipt_id, message_id in matches],
        )

    async def newly_matchable(
        self,
        since: datetime,
        limit: int | None,
        ids: Sequence[int] | None = None,
        message_ids: Sequence[int] | None = None,
    ) -> list[tuple[Receipt, int]]:
        """Unmatched receipts whose message now carries their supplier id (of ``ids``, or about
        ``message_ids``, only, when given).

        A receipt and the submit answer it belongs to can be written by two transactions at
        once; under READ COMMITTED neither sees the other, so both miss the match. This
        catches those up (and any left by a crash between the two).
        """
        query = (
            select(Receipt, Message.id)
            .join(
                Message,
                and_(
                    Message.supplier_id == Receipt.supplier_id,
                    Message.supplier_message_id == Receipt.supplier_message_id,
                ),
            )
            .where(Receipt.message_id.is_(None), Receipt.received_at >= since)
            .order_by(Receipt.id)
            .limit(limit)
        )
        if ids is not None:
            query = query.where(one_of(self.session, Receipt.id, ids))
        if message_ids is not None:
            query = query.where(one_of(self.session, Message.id, message_ids))
        result = await self.session.execute(query)
        return [(row[0], row[1]) for row in result]


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
    ) -> list[Receipt]:
        """Unmatched receipts about a known part: one whose transaction raced the one that
        recorded the parts (READ COMMITTED: neither saw the other), as newly_matchable."""
        query = (
            select(Receipt)
            .join(
                MessagePart,
                and_(
                    MessagePart.supplier_id == Receipt.supplier_id,
                    MessagePart.part_id == Receipt.supplier_message_id,
                ),
            )
            .where(Receipt.message_id.is_(None), Receipt.received_at >= since)
            .order_by(Receipt.id)
            .limit(limit)
        )
        if ids is not None:
            query = query.where(one_of(self.session, Receipt.id, ids))
        if message_ids is not None:
            query = query.where(one_of(self.session, MessagePart.message_id, message_ids))
        result = await self.session.execute(query)
        return list(result.scalars())

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
            await self.session.execute(insert(cast(Table, MessagePart.__table__)), rows)

    async def find(self, supplier_id: int, part_ids: Iterable[str]) -> dict[str, PartRow]:
        wanted = list(set(part_ids))
        if not wanted:
            return {}
        result = await self.session.execute(
            select(
                MessagePart.part_id,
                MessagePart.id,
                MessagePart.message_id,
                MessagePart.seqnum,
                MessagePart.total,
            ).where(
                MessagePart.supplier_id == supplier_id,
                one_of(self.session, MessagePart.part_id, wanted),
            )
        )
        return {row[0]: PartRow(row[1], row[2], row[3], row[4]) for row in result}

    async def statuses(self, message_ids: Iterable[int]) -> dict[int, dict[int, str | None]]:
        """Each message's parts: seqnum -> the status its last report gave.

        The messages are locked first (FOR UPDATE, in id order, as apply_changes locks them):
        two transactions settling different parts of one message at once would otherwise
        each miss the other's part and leave it "sent" (PostgreSQL, several report writers).
        """
        ids = sorted(set(message_ids))
        await self.session.execute(
            select(Message.id)
            .where(one_of(self.session, Message.id, ids))
            .order_by(Message.id)
            .with_for_update()
        )
        columns = (MessagePart.message_id, MessagePart.seqnum, MessagePart.status)
        if is_postgres(self.session):
            # Without statistics `message_id = ANY(…)` looks like a good share of the table
            # (0.5 % per id), and a hash join or a sequential scan wins on paper. One index
            # look-up per message id instead: a LATERAL subquery that OFFSET keeps from being
            # flattened into a join can only be run per id, and per id the index is cheapest.
            wanted = (
                func.unnest(literal(ids, ARRAY(BigInteger)))
                .table_valued("id")
                .render_derived(name="wanted")
            )
            per_id = (
                select(*columns).where(MessagePart.message_id == wanted.c.id).offset(0).lateral()
            )
            query = select(per_id).select_from(wanted).join(per_id, true())
        else:
            query = select(*columns).where(MessagePart.message_id.in_(ids))
        result = await self.session.execute(query)
        found: dict[int, dict[int, str | None]] = {}
        for message_id, seqnum, status in result:
            found.setdefault(message_id, {})[seqnum] = status
        return found

    async def set_statuses(self, statuses: dict[int, str]) -> None:
        """Part row id -> its new status."""
        if not statuses:
            return
        table = cast(Table, MessagePart.__table__)
        await self.session.execute(
            update(table).where(table.c.id == bindparam("part")).values(status=bindparam("st")),
            [{"part": part, "st": status} for part, status in statuses.items()],
        )
