"""What an accept round must know before it admits anything, read in one statement.

A round (messages/storing.py: `write_accepted`) checks its numbers against the opt-out
lists, its references against those in use, and takes ids for the rows it will insert. On
PostgreSQL each statement is a round trip, and a round trip costs more than the statement:
with the single-message requests of an HTTP client a round carries about four messages, and
the accept round's eight round trips were two per message, each a write and a wake-up on both
sides (docs/performance.md, "Round trips"). So on PostgreSQL the three reads are one
`UNION ALL`, and the ids are taken for every number of the round up front: those of numbers
refused later are a gap in the sequence, as a rolled-back insert leaves one anyway.

Then the write: each client's whole total debited where its balance covers it, and the
tasks, messages and ledger entries inserted. On PostgreSQL, with the ids known, that is one
statement too (`write_round`), and the round runs in autocommit (messages/writer.py): the
reads, then the write, each its own implicit transaction, two round trips where BEGIN, four
statements and COMMIT were six. The reads need no transaction of their own: the ids come
from a sequence, an opt-out or a reference that changes between the two statements is one
that could change between two statements of a transaction too (read committed), and the
references' unique index catches a concurrent insert. The write debits as a CTE and inserts
as CTEs; its result row requires that every client's balance covered its total
(`tidings_require`, migration 0019), else the whole statement fails and nothing of it is
written (`UncoveredRound`): a round nearly always has one client, whose balance covers it,
and when it does not the caller decides each request in a transaction.

On SQLite the reads are calls into the same process, nothing to save: they stay the three
statements of their own repositories, and the ids are taken at the insert, under the write
lock (db/ids.py).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    CTE,
    BigInteger,
    Boolean,
    Integer,
    Select,
    String,
    Table,
    TextClause,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import CLIENTS
from tidings.billing.models import LedgerEntry
from tidings.db.ids import first_id_at, next_ids_sql
from tidings.db.prebuilt import POSTGRESQL, dialect_of
from tidings.messages.repository import MESSAGES, TASKS, MessageRepository
from tidings.optouts.repository import OptOutRepository

_OPTED_OUT, _REFERENCE, _ID = 0, 1, 2
# How far the database's clock (which stamps the ids) may run ahead of this host's: the
# weeks that start later than this hold no message yet.
CLOCK_MARGIN = timedelta(days=1)


def _ids_before() -> int:
    """No message has an id this large yet. From the host's real clock, not the injected
    `Clock` (business time, frozen in tests): the database's real clock stamps the ids
    (db/ids.py)."""
    return first_id_at(datetime.fromtimestamp(time.time(), UTC) + CLOCK_MARGIN)


@dataclass(slots=True)
class RoundFacts:
    """The answers: the (client, msisdn) pairs opted out among those asked about, each
    client's references in use among those asked about, and the ids taken (PostgreSQL;
    empty elsewhere, where the insert takes them)."""

    opted_out: set[tuple[int, str]] = field(default_factory=set)
    used_references: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    ids: list[int] = field(default_factory=list)


@cache
def _round_facts() -> TextClause:
    # Each branch is answered by an index: uq_optouts_client_msisdn, the (client_id,
    # reference) unique index of each week of messages (tests/integration/test_query_plans.py).
    # The references have no partition key, so the plan has a scan for every week, and it
    # is made at every execution (a custom plan): about 0.25 ms a week. `id < :ids_before`
    # leaves out the weeks ahead, which hold nothing yet (ids are the database clock's).
    # The product of two arrays may name pairs nobody asked about; the caller ignores them.
    # The ids: db/ids.py's own query (tasks draw from the messages' numbers).
    return text(
        f"SELECT {_OPTED_OUT} AS kind, client_id, msisdn AS value, NULL::bigint AS id "
        "FROM optouts WHERE client_id = ANY(:optout_clients) AND msisdn = ANY(:msisdns) "
        f"UNION ALL SELECT {_REFERENCE}, client_id, reference, NULL FROM messages "
        "WHERE client_id = ANY(:reference_clients) AND reference = ANY(:references) "
        "AND id < :ids_before "
        f"UNION ALL SELECT {_ID}, NULL, NULL, taken.id "
        f"FROM ({next_ids_sql(time_ordered=True)}) AS taken(id)"
    ).bindparams(
        bindparam("optout_clients", type_=ARRAY(Integer)),
        bindparam("msisdns", type_=ARRAY(String)),
        bindparam("reference_clients", type_=ARRAY(Integer)),
        bindparam("references", type_=ARRAY(String)),
        bindparam("n", type_=Integer),
        bindparam("ids_before", type_=BigInteger),
    )


_LEDGER = cast(Table, LedgerEntry.__table__)
LEDGER_COLUMNS = ("client_id", "amount", "reason", "reference", "created_at")


def _insert(table: Table, columns: tuple[str, ...], name: str) -> CTE:
    """`INSERT INTO table (columns) SELECT … FROM unnest(:name_column, …)`: the rows as one
    array per column, planned once whatever their number."""
    arrays = [bindparam(f"{name}_{c}", type_=ARRAY(table.c[c].type)) for c in columns]
    rows = func.unnest(*arrays).table_valued(*columns).render_derived(name=f"{name}_rows")
    chosen = select(*(rows.c[c] for c in columns))
    # No Python-side defaults: the server's fill the columns not given (messages.attempts).
    insert_rows = insert(table).from_select(list(columns), chosen, include_defaults=False)
    return insert_rows.cte(f"{name}_insert")


# SQLSTATE of tidings_require (migration 0019).
REQUIREMENT_FAILED = "TD001"


class UncoveredRound(Exception):
    """A client's balance did not cover its total: the round's write failed whole."""


@cache
def _write_round(message_columns: tuple[str, ...], task_columns: tuple[str, ...]) -> Select[Any]:
    """PostgreSQL: debit every client's total where its balance covers it, insert the
    round's tasks, messages and ledger entries, and fail unless every client was debited.
    Data-modifying CTEs all run, once, whether the main query reads them or not."""
    c = CLIENTS.c
    owed = (
        func.unnest(
            bindparam("debit_clients", type_=ARRAY(c.id.type)),
            bindparam("debit_amounts", type_=ARRAY(c.balance.type)),
        )
        .table_valued("client_id", "amount")
        .render_derived(name="owed")
    )
    debit = (
        update(CLIENTS)
        .where(c.id == owed.c.client_id, c.balance >= owed.c.amount)
        .values(balance=c.balance - owed.c.amount)
        .returning(c.id)
        .cte("debit")
    )
    inserts = [
        _insert(MESSAGES, message_columns, "messages"),
        _insert(_LEDGER, LEDGER_COLUMNS, "ledger"),
    ]
    if task_columns:
        inserts.insert(0, _insert(TASKS, task_columns, "tasks"))
    every_client_paid = func.count() == bindparam("debit_count", type_=Integer)
    required = func.tidings_require(
        every_client_paid, "a balance did not cover its client's total", type_=Boolean
    )
    return select(required).select_from(debit).add_cte(*inserts)


def _as_arrays(
    name: str,
    columns: tuple[str, ...],
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[int] | None = None,
) -> dict[str, list[Any]]:
    """The parameters of `_insert(…, columns, name)`: a list per column (`ids` are
    the rows' "id", where the rows do not hold it)."""
    arrays = {
        f"{name}_{column}": [row[column] for row in rows] for column in columns if column != "id"
    }
    if ids is not None:
        arrays[f"{name}_id"] = list(ids)
    return arrays


class AdmissionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def round_facts(
        self,
        numbers: Mapping[int, Iterable[str]],
        references: Mapping[int, Iterable[str]],
        id_count: int,
    ) -> RoundFacts:
        """Which of each client's `numbers` opted out and which of its `references` are in
        use; on PostgreSQL also `id_count` new message (or task) ids, in ascending order."""
        asked = {client: set(values) for client, values in numbers.items() if values}
        refs = {client: set(values) for client, values in references.items() if values}
        if dialect_of(self.session) != POSTGRESQL:
            return await self._separately(asked, refs)
        facts = RoundFacts()
        if not asked and not refs and id_count <= 0:
            return facts
        result = await self.session.execute(
            _round_facts(),
            {
                "optout_clients": sorted(asked),
                "msisdns": sorted(set().union(*asked.values())),
                "reference_clients": sorted(refs),
                "references": sorted(set().union(*refs.values())),
                "table": MESSAGES.name,
                "n": max(id_count, 0),
                "ids_before": _ids_before(),
            },
        )
        for kind, client_id, value, id_ in result.tuples():
            if kind == _ID:
                facts.ids.append(int(id_))
            elif kind == _OPTED_OUT and value in asked.get(client_id, ()):
                facts.opted_out.add((client_id, value))
            elif kind == _REFERENCE and value in refs.get(client_id, ()):
                facts.used_references[client_id].add(value)
        facts.ids.sort()
        return facts

    async def _separately(
        self, numbers: dict[int, set[str]], references: dict[int, set[str]]
    ) -> RoundFacts:
        facts = RoundFacts()
        if numbers:
            listed = await OptOutRepository(self.session).listed(
                numbers, set().union(*numbers.values())
            )
            facts.opted_out = {pair for pair in listed if pair[1] in numbers[pair[0]]}
        messages = MessageRepository(self.session)
        for client_id, refs in references.items():
            used = await messages.references_in_use(client_id, refs)
            if used:
                facts.used_references[client_id].update(used)
        return facts

    async def write_round(
        self,
        totals: Mapping[int, Decimal],
        tasks: Sequence[Mapping[str, Any]],
        task_ids: Sequence[int],
        messages: Sequence[Mapping[str, Any]],
        message_ids: Sequence[int],
        ledger: Sequence[tuple[int, Decimal, str, str | None]],
        at: datetime,
    ) -> None:
        """PostgreSQL, one statement: debit each client its total in `totals` and insert the
        rows with their ids (the rows of a kind have the same keys; ledger entries are
        (client_id, amount, reason, reference), as LedgerRepository.add_many takes them).
        Raises UncoveredRound, having written nothing, if a balance did not cover its total
        (in a transaction, that transaction is then aborted)."""
        assert dialect_of(self.session) == POSTGRESQL, "one statement on PostgreSQL only"
        task_columns = ("id", *sorted(tasks[0])) if tasks else ()
        message_columns = ("id", *sorted(messages[0]))
        clients = sorted(totals)  # one lock order for every round: no deadlock between them
        try:
            await self.session.execute(
                _write_round(message_columns, task_columns),
                {
                    "debit_clients": clients,
                    "debit_amounts": [totals[client] for client in clients],
                    "debit_count": len(clients),
                    **_as_arrays("tasks", task_columns, tasks, task_ids),
                    **_as_arrays("messages", message_columns, messages, message_ids),
                    **_as_arrays(
                        "ledger",
                        LEDGER_COLUMNS,
                        [dict(zip(LEDGER_COLUMNS, (*entry, at), strict=True)) for entry in ledger],
                    ),
                },
            )
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) == REQUIREMENT_FAILED:
                raise UncoveredRound(sorted(totals)) from error
            raise
