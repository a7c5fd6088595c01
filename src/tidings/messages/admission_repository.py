"""What an accept round must know before it admits anything, read in one statement.

A round (messages/storing.py: `write_accepted`) checks its numbers against the opt-out
lists, its references against those in use, and takes ids for the rows it will insert. On
PostgreSQL each statement is a round trip, and a round trip costs more than the statement:
with the single-message requests of an HTTP client a round carries about four messages, and
the accept round's eight round trips were two per message, each a write and a wake-up on both
sides (docs/performance.md, "Round trips"). So on PostgreSQL the three reads are one
`UNION ALL`, and the ids are taken for every number of the round up front: those of numbers
refused later are a gap in the sequence, as a rolled-back insert leaves one anyway.

On SQLite the reads are calls into the same process, nothing to save: they stay the three
statements of their own repositories, and the ids are taken at the insert, under the write
lock (db/ids.py).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import ARRAY, BigInteger, Integer, String, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.ids import first_id_at, next_ids_sql
from tidings.db.prebuilt import POSTGRESQL, dialect_of
from tidings.messages.repository import MESSAGES, MessageRepository
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
