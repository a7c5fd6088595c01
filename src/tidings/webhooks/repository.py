"""Every SQL statement of the webhook deliveries: enqueue, claim, record, list."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    exists,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnClause

from tidings.accounts.models import Client
from tidings.db.prebuilt import dialect_of, one_of_param, one_of_selected, one_of_values
from tidings.wakeups import WEBHOOKS, wake_after_commit
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
# 'pending' written into the SQL, not bound: a generic plan (asyncpg's prepared statements
# get one after five executions) cannot use the partial index `WHERE state = 'pending'` for
# `state = $1`, since $1 could be anything; for the constant it can.
PENDING_CONSTANT: ColumnClause[str] = literal_column(f"'{PENDING}'")

# The hot statements (enqueue, claim, record) are built once, over the tables' Core columns,
# and executed with their values as parameters (tidings/db/prebuilt.py says why).
DELIVERIES = cast(Table, WebhookDelivery.__table__)
ATTEMPTS = cast(Table, WebhookAttempt.__table__)
CLIENTS = cast(Table, Client.__table__)


def new_webhook_id() -> str:
    """The ``webhook-id`` of a new delivery: "msg_" + a random UUID, unique across every
    gateway (a receiver dedupes on it), made once with the row so retries repeat it."""
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A client's webhook settings, as the enqueue needs them."""

    client_id: int
    callback_url: str | None
    format: str
    retry_schedule: str


@dataclass(frozen=True, slots=True)
class Candidate:
    id: int
    client_id: int
    url: str


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    webhook_id: str  # the webhook-id header
    client_id: int
    message_id: int | None
    url: str
    format: str
    content_type: str
    body: str
    attempts: int
    schedule: list[int]
    lease: datetime
    secret: str | None
    login: str | None
    password: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed delivery: an attempt to log, the state to move to.

    `attempt` is None when nothing was sent (the lease ran short before a slot came free):
    the delivery is only released, to be claimed again.
    """

    delivery_id: int
    lease: datetime
    attempt: dict[str, Any] | None
    state: str
    attempts: int
    next_attempt_at: datetime
    finished_at: datetime | None
    last_error: str | None


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def targets(self, client_ids: Collection[int]) -> dict[int, WebhookTarget]:
        result = await self.session.execute(
            _targets_statement(dialect_of(self.session)), one_of_values("ids", client_ids)
        )
        return {row[0]: WebhookTarget(*row) for row in result.tuples()}

    async def add_deliveries(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            wake_after_commit(self.session, WEBHOOKS)
            # Core (not ORM) INSERT: the ORM's bulk path costs more than the insert itself
            # here, and this runs in every status-change transaction.
            await self.session.execute(_INSERT_DELIVERIES, list(rows))

    async def candidates(
        self, now: datetime, limit: int, exclude_clients: Collection[int]
    ) -> list[Candidate]:
        """Due, unleased deliveries that are first in line for their message, oldest first.

        A delivery waits while an earlier one of its message is pending (retrying or in
        flight), so one message's statuses reach the client in order. Nothing is locked
        here: the worker leaves some candidates unleased (an endpoint with enough in hand),
        and a row lock is a WAL record of its own; `lease` locks only the chosen ones.
        """
        parameters: dict[str, Any] = {"b_now": now, "b_limit": limit}
        if exclude_clients:
            parameters.update(one_of_values("b_exclude", exclude_clients))
        result = await self.session.execute(
            _candidates_statement(dialect_of(self.session), bool(exclude_clients)), parameters
        )
        return [Candidate(*row) for row in result.tuples()]

    async def lease(
        self, ids: Sequence[int], now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        """Lease those of the chosen candidates that are still pending and unleased.

        On PostgreSQL the inner SELECT locks them with SKIP LOCKED and re-checks them on
        their latest version, so of two workers that chose the same row one leases it and
        the other skips it, without waiting; on SQLite BEGIN IMMEDIATE serialises claims.
        Only `locked_until` changes, a column no index holds, so the update is HOT (the
        table keeps room in its pages: fillfactor): no index entry is written. The rows in
        flight stay at the front of the claim's index, where `candidates` steps over them
        (at most the deliveries in flight); a dead worker's rows are due again when its
        lease runs out. Each comes with its client's credentials, read with the claim (not
        cached: a rotated secret signs the very next request).
        """
        if not ids:
            return []
        result = await self.session.execute(
            _lease_statement(dialect_of(self.session)),
            {**one_of_values("b_ids", ids), "b_now": now, "b_until": lease_until},
        )
        return _claimed(result.tuples(), lease_until)

    async def claim(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        """`candidates` and `lease` in one statement, for a worker that would lease every
        candidate (none of their endpoints could reach its budget): the due deliveries, in
        the claim's order, leased as they are found.

        On PostgreSQL the inner SELECT locks its rows with SKIP LOCKED, so a row another
        worker holds is passed over (and the next due one taken in its place), never waited
        for; on SQLite BEGIN IMMEDIATE serialises claims, as for `lease`.
        """
        result = await self.session.execute(
            _claim_statement(dialect_of(self.session)),
            {"b_now": now, "b_limit": limit, "b_until": lease_until},
        )
        return _claimed(result.tuples(), lease_until)

    @staticmethod
    def record_is_one_statement(outcomes: Sequence[Outcome]) -> bool:
        """Whether `record` is one statement (no attempt row to log): the worker can then
        write it without a transaction of its own (db/engine.py: `one_statement`)."""
        return not _attempt_rows(outcomes)

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Log the attempts and move the deliveries, in the caller's one transaction.

        The update only applies while the delivery still carries the lease it was sent
        under: if the lease ran out and another worker took the delivery over, that
        worker's outcome is the one that counts (the attempt is logged either way). A
        first attempt that succeeds has no attempt row: the delivery row keeps its answer
        (`with_attempts` shows it as the one attempt), one insert fewer for most deliveries.
        """
        attempts = _attempt_rows(outcomes)
        if attempts:
            await self.session.execute(_INSERT_ATTEMPTS, attempts)
        if not outcomes:
            return
        # Core (not ORM) UPDATE, so that one executemany carries every row.
        await self.session.execute(
            _RECORD,
            [
                {
                    "delivery_id": o.delivery_id,
                    "lease": o.lease,
                    "new_state": o.state,
                    "new_attempts": o.attempts,
                    "next_at": o.next_attempt_at,
                    "finished": o.finished_at,
                    "error": None if o.last_error is None else o.last_error[:200],
                    **_answer(o),
                }
                for o in outcomes
            ],
        )

    async def recent(
        self, client_id: int, limit: int
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        """A client's latest deliveries, newest first, each with its attempts in order."""
        result = await self.session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.client_id == client_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        return await self.with_attempts(list(result.scalars()))

    async def with_attempts(
        self, deliveries: list[WebhookDelivery]
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        """Each delivery with its attempts in order (one query for all)."""
        by_delivery: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
        if deliveries:
            attempts = await self.session.execute(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(list(by_delivery)))
                .order_by(WebhookAttempt.id)
            )
            for attempt in attempts.scalars():
                by_delivery[attempt.delivery_id].append(attempt)
        return [(d, by_delivery[d.id] or _first_success(d)) for d in deliveries]

    async def get_secret(self, client_id: int) -> str | None:
        result = await self.session.execute(
            select(Client.webhook_secret).where(Client.id == client_id)
        )
        return result.scalar_one_or_none()

    async def set_secret(self, client_id: int, secret: str) -> None:
        await self.session.execute(
            update(Client)
            .where(Client.id == client_id)
            .values(webhook_secret=secret)
            .execution_options(synchronize_session=False)
        )


# --- The hot statements, built once -------------------------------------------------------


@functools.cache
def _targets_statement(dialect: str) -> Select[Any]:
    c = CLIENTS.c
    return select(c.id, c.callback_url, c.webhook_format, c.retry_schedule).where(
        one_of_param(dialect, c.id, "ids")
    )


_INSERT_DELIVERIES: Insert = insert(DELIVERIES)
_INSERT_ATTEMPTS: Insert = insert(ATTEMPTS)


def _due(dialect: str, *, excluding: bool = False) -> Select[tuple[int, int, str]]:
    """Due, unleased deliveries first in line for their message, in the claim's order
    (`candidates`), at most `b_limit`; with `b_exclude` (clients left out) when
    `excluding`."""
    c = DELIVERIES.c
    earlier = DELIVERIES.alias("earlier")
    now: BindParameter[datetime] = bindparam("b_now")
    query = (
        select(c.id, c.client_id, c.url)
        .where(
            c.state == PENDING_CONSTANT,
            c.next_attempt_at <= now,
            or_(c.locked_until.is_(None), c.locked_until < now),
            ~exists().where(
                earlier.c.message_id == c.message_id,
                earlier.c.state == PENDING_CONSTANT,
                earlier.c.id < c.id,
            ),
        )
        .order_by(c.next_attempt_at, c.id)
        .limit(bindparam("b_limit", type_=Integer))
    )
    if excluding:
        query = query.where(~one_of_param(dialect, c.client_id, "b_exclude"))
    return query


@functools.cache
def _candidates_statement(dialect: str, excluding: bool) -> Select[tuple[int, int, str]]:
    # Two statements, so that the usual look (nobody saturated) has no filter to evaluate.
    return _due(dialect, excluding=excluding)


@functools.cache
def _lease_statement(dialect: str) -> Update:
    """`lease`: UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING."""
    c = DELIVERIES.c
    leasable = (
        select(c.id)
        .where(
            one_of_param(dialect, c.id, "b_ids"),
            c.state == PENDING_CONSTANT,
            or_(c.locked_until.is_(None), c.locked_until < bindparam("b_now")),
        )
        .with_for_update(skip_locked=True)
    )
    return _leasing(dialect, leasable)


@functools.cache
def _claim_statement(dialect: str) -> Update:
    """`claim`: `lease` over `candidates`' own query, locked as it is read."""
    due = _due(dialect).with_only_columns(DELIVERIES.c.id).with_for_update(skip_locked=True)
    return _leasing(dialect, due)


def _leasing(dialect: str, leasable: Select[Any]) -> Update:
    """Lease the rows `leasable` selects, returning each delivery (`_claimed`) with its
    client's credentials.

    The credentials are scalar subqueries of the RETURNING (a primary-key look-up each)
    rather than a SELECT of their own after the claim: one statement fewer per claim, and
    still read in the claim's transaction, so a rotated secret signs the very next request
    as before (they are never cached).
    """
    c = DELIVERIES.c
    return (
        update(DELIVERIES)
        .where(one_of_selected(dialect, c.id, leasable))
        .values(locked_until=bindparam("b_until"))
        .returning(
            c.id,
            c.client_id,
            c.message_id,
            c.url,
            c.format,
            c.content_type,
            c.body,
            c.attempts,
            c.schedule,
            c.webhook_id,
            _of_client(CLIENTS.c.webhook_secret),
            _of_client(CLIENTS.c.webhook_login),
            _of_client(CLIENTS.c.webhook_password),
        )
    )


def _claimed(rows: Iterable[tuple[Any, ...]], lease: datetime) -> list[ClaimedDelivery]:
    """The rows `_leasing` returns, as deliveries in id order."""
    return [
        ClaimedDelivery(
            id=id_,
            # Rows made before webhook ids existed keep sending their row id.
            webhook_id=webhook_id or str(id_),
            client_id=client_id,
            message_id=message_id,
            url=url,
            format=format_,
            content_type=content_type,
            body=body,
            attempts=attempts,
            schedule=[int(delay) for delay in schedule],
            lease=lease,
            secret=secret,
            login=login,
            password=password,
        )
        for (
            id_,
            client_id,
            message_id,
            url,
            format_,
            content_type,
            body,
            attempts,
            schedule,
            webhook_id,
            secret,
            login,
            password,
        ) in sorted(rows, key=lambda row: row[0])
    ]


def _of_client(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A column of the leased delivery's client."""
    # SQLite's RETURNING is rendered with unqualified column names, subqueries included:
    # `WHERE id = client_id` there, and `client_id` is the delivery's only while `clients`
    # has no column of that name.
    assert "client_id" not in CLIENTS.c, "the lease's credentials would read the wrong column"
    return (
        select(column)
        .where(CLIENTS.c.id == DELIVERIES.c.client_id)
        .correlate(DELIVERIES)
        .scalar_subquery()
    )


# The outcome of each delivery, applied only while it still carries the lease it was sent
# under (`record`). Its parameters are named apart from the columns, which SQLAlchemy keeps
# for the SET clause's own.
_RECORD: Update = (
    update(DELIVERIES)
    .where(
        and_(
            DELIVERIES.c.id == bindparam("delivery_id"),
            DELIVERIES.c.locked_until == bindparam("lease"),
        )
    )
    .values(
        state=bindparam("new_state"),
        attempts=bindparam("new_attempts"),
        next_attempt_at=bindparam("next_at"),
        finished_at=bindparam("finished"),
        last_error=bindparam("error"),
        status_code=bindparam("answer_code"),
        duration_ms=bindparam("answer_ms"),
        response_body=bindparam("answer_body"),
        locked_until=None,
    )
)


def _answer(outcome: Outcome) -> dict[str, Any]:
    """The delivery row's copy of a first attempt that succeeded (no attempt row for it)."""
    attempt = outcome.attempt
    if attempt is None or not first_success(outcome):
        return {"answer_code": None, "answer_ms": None, "answer_body": None}
    return {
        "answer_code": attempt["status_code"],
        "answer_ms": attempt["duration_ms"],
        "answer_body": attempt["response_body"],
    }


def first_success(outcome: Outcome) -> bool:
    return outcome.attempt is not None and outcome.state == DELIVERED and outcome.attempts == 1


def _first_success(delivery: WebhookDelivery) -> list[WebhookAttempt]:
    """The attempt of a delivery that succeeded at once, rebuilt from the delivery row
    (not added to the session: nothing is written)."""
    if delivery.state != DELIVERED or delivery.finished_at is None:
        return []
    return [
        WebhookAttempt(
            delivery_id=delivery.id,
            at=delivery.finished_at - timedelta(milliseconds=delivery.duration_ms or 0),
            status_code=delivery.status_code,
            response_body=delivery.response_body,
            error=None,
            duration_ms=delivery.duration_ms or 0,
        )
    ]


def _attempt_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """The attempt rows `record` logs: all but first attempts that succeeded."""
    return [o.attempt for o in outcomes if o.attempt is not None and not first_success(o)]
