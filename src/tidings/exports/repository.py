"""Every SQL statement of the exports: the exports table, and the stream of messages.

The stream runs on an engine of its own (`create_reader_engine`): on SQLite the main engine
has one connection whose transactions hold the write lock, and an export reads for seconds
or minutes; a separate read-only connection reads a WAL snapshot without holding up writers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    case,
    delete,
    event,
    false,
    func,
    literal,
    null,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import aliased
from sqlalchemy.pool import NullPool

from tidings.accounts.models import Client
from tidings.config import normalize_database_url
from tidings.exports.filters import ExportFilter
from tidings.exports.inbound import inbound_export_query, wants_inbound
from tidings.exports.models import BUILDING, FAILED, PENDING, READY, Export
from tidings.exports.rows import HLR, HLR_ORIGINATOR, VIBER
from tidings.hlr.models import HlrLookup
from tidings.messages.models import Message
from tidings.viber.models import ViberContent
from tidings.wakeups import EXPORTS, wake_after_commit


@dataclass(frozen=True, slots=True)
class ClaimedExport:
    id: int
    key: str
    client_id: int
    filters: dict[str, Any]
    callback_url: str | None
    attempts: int
    owner: str
    created_at: datetime
    expires_at: datetime


class ExportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_client(self, client_id: int) -> None:
        """Serialise one client's creates (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
        await self.session.execute(
            select(Client.id).where(Client.id == client_id).with_for_update()
        )

    async def count_kept(self, client_id: int, now: datetime) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(Export)
            .where(Export.client_id == client_id, Export.expires_at > now)
        )
        return int(result.scalar_one())

    async def add(self, export: Export) -> Export:
        wake_after_commit(self.session, EXPORTS)
        self.session.add(export)
        await self.session.flush()
        return export

    async def get(self, client_id: int, key: str, now: datetime) -> Export | None:
        result = await self.session.execute(
            select(Export).where(
                Export.client_id == client_id, Export.key == key, Export.expires_at > now
            )
        )
        return result.scalar_one_or_none()

    async def of_client(self, client_id: int, now: datetime) -> list[Export]:
        result = await self.session.execute(
            select(Export)
            .where(Export.client_id == client_id, Export.expires_at > now)
            .order_by(Export.created_at, Export.id)
        )
        return list(result.scalars())

    async def delete(self, client_id: int, key: str, now: datetime) -> bool:
        result = await self.session.execute(
            delete(Export)
            .where(Export.client_id == client_id, Export.key == key, Export.expires_at > now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- The builders' side -------------------------------------------------------------

    async def claim(self, now: datetime, lease_until: datetime, owner: str) -> ClaimedExport | None:
        """Lease the oldest export waiting for a build, or whose builder's lease ran out.

        On PostgreSQL the row is locked with SKIP LOCKED, so concurrent workers take
        different exports without waiting; on SQLite BEGIN IMMEDIATE serialises claims.
        """
        result = await self.session.execute(
            select(Export.id)
            .where(
                Export.state.in_([PENDING, BUILDING]),
                (Export.locked_until.is_(None)) | (Export.locked_until <= now),
                Export.expires_at > now,
            )
            .order_by(Export.created_at, Export.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        export_id = result.scalar_one_or_none()
        if export_id is None:
            return None
        await self.session.execute(
            update(Export)
            .where(Export.id == export_id)
            .values(
                state=BUILDING,
                lease_owner=owner,
                locked_until=lease_until,
                attempts=Export.attempts + 1,
                started_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        row = (
            await self.session.execute(select(Export).where(Export.id == export_id))
        ).scalar_one()
        return ClaimedExport(
            id=row.id,
            key=row.key,
            client_id=row.client_id,
            filters=dict(row.filters),
            callback_url=row.callback_url,
            attempts=row.attempts,
            owner=owner,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    async def renew(self, export_id: int, owner: str, lease_until: datetime) -> bool:
        """Extend a lease still held; False when it was lost (taken over, or deleted)."""
        return await self._update_held(export_id, owner, locked_until=lease_until)

    async def finish(
        self, export_id: int, owner: str, now: datetime, row_count: int, sizes: dict[str, int]
    ) -> bool:
        return await self._update_held(
            export_id,
            owner,
            state=READY,
            row_count=row_count,
            sizes=sizes,
            finished_at=now,
            lease_owner=None,
            locked_until=None,
            last_error=None,
        )

    async def release(
        self, export_id: int, owner: str, retry_at: datetime, error: str, *, counted: bool = True
    ) -> bool:
        """Give an attempt back, to be claimed again from `retry_at`; an attempt that was not
        `counted` (the worker stopped) does not count towards the export's attempts."""
        values: dict[str, Any] = {
            "state": PENDING,
            "lease_owner": None,
            "locked_until": retry_at,
            "last_error": error[:200],
        }
        if not counted:
            values["attempts"] = Export.attempts - 1
        return await self._update_held(export_id, owner, **values)

    async def fail(self, export_id: int, owner: str, now: datetime, error: str) -> bool:
        return await self._update_held(
            export_id,
            owner,
            state=FAILED,
            finished_at=now,
            lease_owner=None,
            locked_until=None,
            last_error=error[:200],
        )

    async def _update_held(self, export_id: int, owner: str, **values: Any) -> bool:
        result = await self.session.execute(
            update(Export)
            .where(Export.id == export_id, Export.lease_owner == owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def exists(self, export_id: int) -> bool:
        result = await self.session.execute(select(Export.id).where(Export.id == export_id))
        return result.scalar_one_or_none() is not None

    # --- Expiry -------------------------------------------------------------------------

    async def expired(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        result = await self.session.execute(
            select(Export.id, Export.key)
            .where(Export.expires_at <= now)
            .order_by(Export.expires_at)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in result.tuples()]

    async def delete_ids(self, ids: Sequence[int]) -> None:
        if ids:
            await self.session.execute(
                delete(Export)
                .where(Export.id.in_(list(ids)))
                .execution_options(synchronize_session=False)
            )

    async def keys(self) -> set[str]:
        result = await self.session.execute(select(Export.key))
        return {row[0] for row in result.tuples()}


# --- The messages of an export --------------------------------------------------------------


def create_reader_engine(url: str) -> AsyncEngine:
    """An engine for the export stream only: read-only and beside the main one on SQLite."""
    url = normalize_database_url(url)
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_size=1, max_overflow=1, pool_pre_ping=True)
    engine = create_async_engine(url, poolclass=NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit: the SELECT is its own read transaction, a WAL snapshot that never
        # takes a lock a writer waits on.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("PRAGMA busy_timeout=10000", "PRAGMA query_only=ON"):
            cursor.execute(pragma)
        cursor.close()

    return engine


def export_query(client_id: int, spec: ExportFilter) -> Select[Any]:
    """The records `rows.RowRenderer` renders, in time_in order: messages, HLR lookups (when
    the export is of every type, or of `hlr`) and inbound messages (`exports.inbound`),
    merged by time (UNION ALL).

    A Viber message's content and fallback SMS are not in its record: `stream_messages` adds
    them batch by batch (`viber_details_query`). Money and times come raw (micro-units; on
    SQLite, the stored ISO text), skipping the column types' conversions, which would cost
    more than the rest of a row's rendering.
    """
    parts = []
    if spec.message_type != HLR:
        parts.append(_message_query(client_id, spec))
    if spec.message_type == HLR or (spec.message_type is None and not spec.by_ids):
        lookups = hlr_export_query(client_id, spec)
        if spec.message_type == HLR:
            return lookups.order_by(HlrLookup.created_at, HlrLookup.id)
        parts.append(lookups)
    if wants_inbound(spec):
        parts.append(inbound_export_query(client_id, spec))
    if len(parts) == 1:
        return parts[0].order_by(Message.time_in, Message.id)  # the messages alone
    merged = union_all(*parts).subquery()
    return select(merged).order_by(merged.c.time_in, merged.c.id)


def may_hold_viber(spec: ExportFilter) -> bool:
    """Whether an export can have Viber rows: of `viber`, of every type, or by ids."""
    return spec.by_ids or spec.message_type in (None, VIBER)


def _record_columns(m: Any) -> list[Any]:
    """The 12 columns of a message record (`rows.RECORD_WIDTH`), of `Message` or an alias."""
    return [
        m.id,
        m.channel,
        m.msisdn,
        m.country,
        m.originator,
        type_coerce(m.price, BigInteger),
        m.currency,
        type_coerce(m.time_in, String),
        type_coerce(m.time_sent, String),
        type_coerce(m.time_dr, String),
        m.status,
        m.body,
    ]


def _message_query(client_id: int, spec: ExportFilter) -> Select[Any]:
    """Messages as records.

    A fallback SMS (a row with `parent_id`) is an SMS the client was sent and charged for: it
    is a row of its own in `sms` exports and when asked for by id, and in an export of every
    type it appears only as its Viber message's `alternativeSMS` (as in the seed's example),
    so that no message is counted twice (docs/exports.md).
    """
    m = Message
    columns = _record_columns(m)
    columns[7] = columns[7].label("time_in")
    query = select(*columns).where(m.client_id == client_id)
    if spec.message_ids is not None:
        query = query.where(m.id.in_(spec.message_ids))
    else:
        if spec.message_type is None:
            query = query.where(m.parent_id.is_(None))
        if spec.time_in_from is not None:
            query = query.where(m.time_in >= spec.time_in_from)
        if spec.time_in_until is not None:
            query = query.where(m.time_in < spec.time_in_until)
        if spec.msisdns is not None:
            query = query.where(m.msisdn.in_(spec.msisdns))
        if spec.originator is not None:
            query = query.where(m.originator == spec.originator)
        if spec.source_type is not None:
            query = query.where(m.source == spec.source_type)
        if spec.message_type is not None:
            query = query.where(m.channel == spec.message_type)
        if spec.time_sent_from is not None:
            query = query.where(m.time_sent >= spec.time_sent_from)
        if spec.time_sent_until is not None:
            query = query.where(m.time_sent < spec.time_sent_until)
        if spec.country is not None:
            query = query.where(m.country == spec.country)
        if spec.statuses is not None:
            query = query.where(m.status.in_(spec.statuses) if spec.statuses else false())
    return query


def hlr_export_query(client_id: int, spec: ExportFilter) -> Select[Any]:
    """HLR lookups as export records, in the messages' columns (`rows.RowRenderer` turns
    them into `hlr_row`s): originator "HLR"; time_dr the time of the final answer; the status
    a message status word (`HLR_EXPORT_STATUS`); `body` the result as `rows.encode_hlr` text.

    `message_id` filters select messages only: lookup ids are a sequence of their own.
    """
    h = HlrLookup
    status = case(
        (h.status == "sent", literal("sent")),
        (h.status == "failed", literal("failed")),
        else_=literal("delivered"),
    )
    body = (
        h.status
        + literal("|")
        + func.coalesce(h.network, literal(""))
        + literal("|")
        + case((h.ported.is_(True), literal("1")), else_=literal("0"))
        + literal("|")
        + case((h.roaming.is_(True), literal("1")), else_=literal("0"))
    )
    query = select(
        h.id,
        literal(HLR).label("channel"),
        h.msisdn,
        h.country,
        literal(HLR_ORIGINATOR).label("originator"),
        type_coerce(h.price, BigInteger),
        h.currency,
        type_coerce(h.created_at, String).label("time_in"),
        type_coerce(h.sent_at, String),
        type_coerce(case((h.status != "sent", h.status_at), else_=null()), String),
        status.label("status"),
        body.label("body"),
    ).where(h.client_id == client_id)
    if spec.time_in_from is not None:
        query = query.where(h.created_at >= spec.time_in_from)
    if spec.time_in_until is not None:
        query = query.where(h.created_at < spec.time_in_until)
    if spec.msisdns is not None:
        query = query.where(h.msisdn.in_(spec.msisdns))
    if spec.originator is not None and spec.originator != HLR_ORIGINATOR:
        query = query.where(false())
    if spec.source_type is not None:
        query = query.where(h.source == spec.source_type)
    if spec.time_sent_from is not None:
        query = query.where(h.sent_at >= spec.time_sent_from)
    if spec.time_sent_until is not None:
        query = query.where(h.sent_at < spec.time_sent_until)
    if spec.country is not None:
        query = query.where(h.country == spec.country)
    if spec.statuses is not None:
        query = query.where(status.in_(spec.statuses) if spec.statuses else false())
    return query


def viber_details_query(message_ids: Sequence[int]) -> Select[Any]:
    """Viber messages' extra columns: img, caption, action and their fallback SMS's record
    (`rows.VIBER_RECORD_WIDTH`; None columns when no fallback SMS was created), by id."""
    v = ViberContent
    fallback = aliased(Message, name="fallback")
    return (
        select(v.message_id, v.img, v.caption, v.action, *_record_columns(fallback))
        .select_from(v)
        .outerjoin(fallback, fallback.id == v.fallback_id)
        .where(v.message_id.in_(list(message_ids)))
    )


async def with_viber_details(connection: AsyncConnection, batch: Sequence[Any]) -> Sequence[Any]:
    """A batch with each Viber record extended by its details: one query for the batch's
    Viber messages, none for a batch without any (an SMS-only export pays nothing)."""
    ids = [record[0] for record in batch if record[1] == VIBER]
    if not ids:
        return batch
    result = await connection.execute(viber_details_query(ids))
    details = {row[0]: tuple(row[1:]) for row in result.tuples()}
    return [
        (*record, *details[record[0]]) if record[1] == VIBER and record[0] in details else record
        for record in batch
    ]


async def stream_messages(
    connection: AsyncConnection, client_id: int, spec: ExportFilter, batch_size: int
) -> AsyncIterator[Sequence[Any]]:
    """The export's records in batches, from a server-side cursor: never all in memory.
    Viber details are read per batch on the same connection, inside the same transaction."""
    viber = may_hold_viber(spec)
    result = await connection.stream(
        export_query(client_id, spec).execution_options(yield_per=batch_size)
    )
    try:
        async for batch in result.partitions(batch_size):
            yield await with_viber_details(connection, batch) if viber else batch
    finally:
        await result.close()
