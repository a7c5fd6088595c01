"""Long messages an SMPP client sends as parts: held until whole, then accepted as one.

Every part is answered on its own, with its own message_id (``reply_id``), once it is
stored: a row in ``smpp_inbound_parts`` committed before the submit_sm_resp goes out, so a
part the client saw accepted survives ``kill -9`` and the server picks the message up again
when it starts (:meth:`Assembler.load`). The part that completes a message is not stored on
its own: it is written with the message, in the acceptance transaction, which also ties the
earlier parts to the message.

The message takes its options (validity, schedule, addresses, data_coding, the rest of the
submit_sm) from part 1, whatever order the parts came in, and its text is the parts' user
data decoded as one (``text.join_text``). Each part keeps the registered_delivery it was
sent with: a part that asked gets a receipt for the whole message's final state, carrying
the message_id its own submit_sm_resp carried.

A message still incomplete ``concat_timeout`` after its first part is given up: its parts
become ``undelivered`` (an UNDELIV receipt for each that asked). One that completes but is
refused (no balance, bad text, …) answers the last part with the refusal and gives the
earlier parts ``rejected`` receipts where asked.

Parts are matched by client, source, destination, reference and total within one server
process; a client whose binds land on two processes running ``tidings smpp`` at once must
send the parts of one message on one bind (docs/smpp-server.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.connectors.smpp.concat import assembly_key as shared_assembly_key
from tidings.connectors.smpp.concat import charset_named
from tidings.connectors.smpp.pdu import HEADER, CommandStatus, DataSm, SubmitSm, decode, encode
from tidings.connectors.smpp.text import (
    Concat,
    InboundPart,
    TextRefused,
    join_text,
    read_part,
)
from tidings.db.engine import transaction
from tidings.errors import TidingsError
from tidings.messages.status import Status
from tidings.smpp_server.store import (
    PER_PART,
    complete_parts,
    fail_parts,
    open_parts,
    part_row,
    remember_receipt_requests,
    store_parts,
)
from tidings.smpp_server.submits import status_of

if TYPE_CHECKING:
    from tidings.messages.acceptance import Acceptance
    from tidings.smpp_server.server import BoundClient

log = logging.getLogger("tidings.smpp.server")

# Answer(status, message_id): sends the submit_sm_resp / data_sm_resp of one part.
Answer = Callable[[int, str], None]
AfterWrite = Callable[[AsyncSession, Sequence[int]], Any]
Accept = Callable[["BoundClient", SubmitSm | DataSm, str, AfterWrite], "asyncio.Future[Acceptance]"]


@dataclass(slots=True)
class _Part:
    seqnum: int
    reply_id: str
    pdu: SubmitSm | DataSm
    inbound: InboundPart
    # Settles True once the row is committed (at once for parts read at start), False if
    # storing it failed (the part was refused, the client sends it again).
    stored: asyncio.Future[bool]


@dataclass(slots=True)
class _Assembly:
    client_id: int
    key: str
    total: int
    started: datetime
    parts: dict[int, _Part] = field(default_factory=dict)


def assembly_key(pdu: SubmitSm | DataSm, concat: Concat) -> str:
    """What the parts of one message share (besides the client)."""
    return shared_assembly_key(pdu.source_addr, pdu.destination_addr, concat)


class Assembler:
    """The incomplete long messages of every client of one server."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        timeout: float,
        max_open: int,
        max_parts: int,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.timeout = timedelta(seconds=timeout)
        self.max_open = max_open  # incomplete messages per client
        self.max_parts = max_parts
        self._open: dict[tuple[int, str], _Assembly] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def incomplete(self) -> int:
        return len(self._open)

    async def load(self) -> int:
        """Pick up the parts answered before a restart; returns how many."""
        async with transaction(self.sessions) as session:
            stored = await open_parts(session)
        loop = asyncio.get_running_loop()
        for row in stored:
            pdu = decode(row.pdu)
            if not isinstance(pdu, SubmitSm | DataSm):  # pragma: no cover - only those are kept
                continue
            short = pdu.short_message if isinstance(pdu, SubmitSm) else b""
            try:
                inbound = read_part(
                    short,
                    pdu.data_coding,
                    pdu.esm_class,
                    pdu.tlvs,
                    default=charset_named(row.charset),
                )
            except TextRefused:  # pragma: no cover - checked before it was stored
                continue
            if inbound.concat is None:  # pragma: no cover - only parts are kept
                continue
            key = (row.client_id, row.assembly)
            assembly = self._open.get(key)
            if assembly is None:
                assembly = self._open[key] = _Assembly(
                    row.client_id, row.assembly, inbound.concat.total, row.received_at
                )
            done: asyncio.Future[bool] = loop.create_future()
            done.set_result(True)
            assembly.parts[row.seqnum] = _Part(row.seqnum, row.reply_id, pdu, inbound, done)
        return len(stored)

    def add(
        self,
        client: BoundClient,
        pdu: SubmitSm | DataSm,
        inbound: InboundPart,
        answer: Answer,
        accept: Accept,
    ) -> None:
        """Take one part: answered once stored, or with the whole message's outcome."""
        concat = inbound.concat
        assert concat is not None
        if not 1 <= concat.seqnum <= concat.total:
            answer(CommandStatus.ESME_RINVOPTPARAMVAL, "")
            return
        if concat.total > self.max_parts:
            answer(CommandStatus.ESME_RINVMSGLEN, "")
            return
        key = (client.client_id, assembly_key(pdu, concat))
        assembly = self._open.get(key)
        if assembly is None:
            if sum(1 for k in self._open if k[0] == client.client_id) >= self.max_open:
                answer(CommandStatus.ESME_RMSGQFUL, "")
                return
            assembly = self._open[key] = _Assembly(
                client.client_id, key[1], concat.total, self.clock.now()
            )
        known = assembly.parts.get(concat.seqnum)
        if known is not None:
            self._again(known, pdu, answer)
            return
        part = _Part(
            concat.seqnum,
            uuid.uuid4().hex,
            pdu,
            inbound,
            asyncio.get_running_loop().create_future(),
        )
        assembly.parts[concat.seqnum] = part
        if len(assembly.parts) == assembly.total:
            del self._open[key]
            self._run(self._complete(client, assembly, part, answer, accept))
        else:
            self._run(self._store(client, assembly, part, answer))

    def _again(self, known: _Part, pdu: SubmitSm | DataSm, answer: Answer) -> None:
        """A part sent again (its answer was lost): the same answer if it is the same part."""
        # The same PDU but for its header (the sequence number differs).
        if encode(known.pdu)[HEADER.size :] != encode(pdu)[HEADER.size :]:
            answer(CommandStatus.ESME_RINVOPTPARAMVAL, "")
            return

        def stored(done: asyncio.Future[bool]) -> None:
            if done.result():
                answer(CommandStatus.ESME_ROK, known.reply_id)
            else:
                answer(CommandStatus.ESME_RSYSERR, "")

        known.stored.add_done_callback(stored)

    async def _store(
        self, client: BoundClient, assembly: _Assembly, part: _Part, answer: Answer
    ) -> None:
        try:
            async with transaction(self.sessions) as session:
                await store_parts(session, [self._row(client, assembly, part, None)])
        except Exception:
            log.exception("SMPP: storing part %d of a long message failed", part.seqnum)
            if assembly.parts.get(part.seqnum) is part:
                del assembly.parts[part.seqnum]
            part.stored.set_result(False)
            answer(CommandStatus.ESME_RSYSERR, "")
            return
        part.stored.set_result(True)
        answer(CommandStatus.ESME_ROK, part.reply_id)

    def _row(
        self, client: BoundClient, assembly: _Assembly, part: _Part, message_id: int | None
    ) -> dict[str, object]:
        return part_row(
            client.client_id,
            assembly.key,
            part.seqnum,
            assembly.total,
            part.reply_id,
            part.pdu.registered_delivery,
            None if message_id is not None else encode(part.pdu),
            self.clock.now(),
            message_id,
        )

    async def _complete(
        self,
        client: BoundClient,
        assembly: _Assembly,
        last: _Part,
        answer: Answer,
        accept: Accept,
    ) -> None:
        earlier = [p for p in assembly.parts.values() if p is not last]
        results = await asyncio.gather(*(p.stored for p in earlier))
        if not all(results):  # an earlier part was refused meanwhile: not whole after all
            for part, ok in zip(earlier, results, strict=True):
                if not ok:
                    del assembly.parts[part.seqnum]
            self._open.setdefault((assembly.client_id, assembly.key), assembly)
            await self._store(client, assembly, last, answer)
            return
        ordered = [assembly.parts[n] for n in sorted(assembly.parts)]
        stored_ids = [p.reply_id for p in earlier]
        try:
            body = join_text([p.inbound for p in ordered])
        except TextRefused as error:
            log.info("SMPP: long message refused: %s", error)
            answer(CommandStatus.ESME_RINVDCS, "")
            last.stored.set_result(False)
            await self._give_up(assembly.client_id, stored_ids, Status.REJECTED, str(error))
            return

        async def write(session: AsyncSession, message_ids: Sequence[int]) -> None:
            [message_id] = message_ids
            await complete_parts(session, message_id, stored_ids)
            await store_parts(session, [self._row(client, assembly, last, message_id)])
            await remember_receipt_requests(session, message_ids, PER_PART)

        try:
            acceptance = await accept(client, ordered[0].pdu, body, write)
        except Exception as error:
            status = _status_of(error)
            answer(status, "")
            last.stored.set_result(False)
            if not isinstance(error, TidingsError):
                # The database, not the message: the parts answered OK stay, and the client
                # sends this last part again (it got a system error), which completes it.
                del assembly.parts[last.seqnum]
                self._open.setdefault((assembly.client_id, assembly.key), assembly)
                return
            await self._give_up(
                assembly.client_id, stored_ids, Status.REJECTED, f"refused: 0x{status:08X}"
            )
            return
        last.stored.set_result(True)
        log.debug("SMPP: long message %d whole", acceptance.items[0].id)
        answer(CommandStatus.ESME_ROK, last.reply_id)

    def expire(self) -> None:
        """Give up on messages incomplete past the timeout (the server calls this often)."""
        limit = self.clock.now() - self.timeout
        for key, assembly in list(self._open.items()):
            if assembly.started < limit:
                del self._open[key]
                self._run(self._expire(assembly))

    async def _expire(self, assembly: _Assembly) -> None:
        results = await asyncio.gather(*(p.stored for p in assembly.parts.values()))
        stored = [p.reply_id for p, ok in zip(assembly.parts.values(), results, strict=True) if ok]
        if not await self._give_up(
            assembly.client_id, stored, Status.UNDELIVERED, "incomplete long message"
        ):
            self._open.setdefault((assembly.client_id, assembly.key), assembly)  # next turn

    async def _give_up(
        self, client_id: int, reply_ids: Sequence[str], status: Status, detail: str
    ) -> bool:
        try:
            async with transaction(self.sessions) as session:
                await fail_parts(session, self.clock, client_id, reply_ids, status, detail)
        except Exception:
            log.exception("SMPP: giving up on %d parts failed", len(reply_ids))
            return False
        return True

    def _run(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, within: float) -> None:
        """Let parts being stored or accepted finish (the server is stopping)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=within)


def _status_of(error: BaseException) -> int:
    if isinstance(error, TidingsError):
        return status_of(error)
    log.error("SMPP: accepting a long message failed", exc_info=error)
    return CommandStatus.ESME_RSYSERR
