"""Inbound messages: match to a client, store once, pass on (webhook, SMPP), in one
transaction; the numbers clients own.

`receive` is what every way in calls (SMPP connector, `POST /api/mo`, the simulator), in
the caller's transaction: a message is answered to its supplier only after this committed,
and everything owed to the client (the webhook, the deliver_sm) is written with it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.clock import Clock
from tidings.connectors.base import InboundItem, InboundMo, InboundPiece
from tidings.connectors.smpp.concat import join_leniently
from tidings.connectors.smpp.text import InboundPart as WirePart
from tidings.errors import Conflict, InvalidRequest, NotFound
from tidings.inbound.models import Number
from tidings.inbound.repository import InboundRepository, NumberRepository, Owner
from tidings.smpp_server.store import enqueue_smpp_inbound
from tidings.webhooks.schedules import DEFAULT_SCHEDULE, PRESETS, parse_schedule
from tidings.webhooks.service import ClientEvent, enqueue_client_events

log = logging.getLogger("tidings.inbound")

INBOUND_EVENT = "message.inbound"
UNROUTED = "unrouted"  # the owner of messages no number matched (client_id NULL)
MAX_NUMBER = 20
MAX_KEYWORD = 32
MAX_TEXT = 10_000
DEFAULT_DEDUPE_WINDOW = timedelta(minutes=10)
# A long message still missing parts this long after its first is stored with what came.
PARTS_TIMEOUT = timedelta(hours=1)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # seed 004's times, UTC

_NUMBER = re.compile(r"^[0-9A-Za-z]{1,20}$")
_SEPARATORS = re.compile(r"[\s\-().]")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class StoredInbound:
    """One message `receive` took: its row, and whether it was new or a repeat."""

    id: int
    client_id: int | None
    number: str
    keyword: str | None
    sender: str
    text: str
    parts: int
    received_at: datetime
    duplicate: bool = False


InboundHook = Callable[[AsyncSession, Clock, Sequence[StoredInbound]], Awaitable[None]]
"""Runs in `receive`'s transaction on the new messages, stored and matched to their client."""


def normalise_number(number: str) -> str:
    """A number as numbers and messages store it: no '+', spaces or dashes; digits keep
    their leading zeros (short codes are national). Raises InvalidRequest."""
    cleaned = _SEPARATORS.sub("", number.strip()).removeprefix("+")
    if not _NUMBER.fullmatch(cleaned):
        raise InvalidRequest(
            f"{number!r} is not a number or short code (1-20 letters and digits)",
            reason="bad_number",
            field="number",
        )
    return cleaned


def normalise_keyword(keyword: str | None) -> str:
    """A keyword as stored: one word, upper case; "" (none) for the whole number."""
    if keyword is None or not keyword.strip():
        return ""
    word = keyword.strip().upper()
    if len(word) > MAX_KEYWORD or not _WORD.fullmatch(word):
        raise InvalidRequest(
            f"keyword {keyword!r} must be one word of at most {MAX_KEYWORD} characters",
            reason="bad_keyword",
            field="keyword",
        )
    return word


def keyword_of(text: str) -> str:
    """The first word of a message, upper case: what a shared short code is matched on."""
    match = _WORD.search(text)
    return match.group().upper()[:MAX_KEYWORD] if match else ""


def validate_mo_url(url: str) -> str | None:
    """A client's mo_url: an http(s) URL, or "" for none."""
    url = url.strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise InvalidRequest(
            f"mo_url {url!r} must be an http:// or https:// URL", reason="bad_url", field="mo_url"
        )
    return url


# --- numbers ------------------------------------------------------------------------------


async def assign_number(
    session: AsyncSession,
    clock: Clock,
    client_id: int,
    number: str,
    *,
    keyword: str | None = None,
    supplier_id: int | None = None,
) -> Number:
    repo = NumberRepository(session)
    row = Number(
        client_id=client_id,
        number=normalise_number(number),
        keyword=normalise_keyword(keyword),
        supplier_id=supplier_id,
        created_at=clock.now(),
    )
    if await repo.find(row.number, row.keyword) is not None:
        raise Conflict(_taken(row), reason="number_taken", field="number")
    try:
        async with session.begin_nested():
            return await repo.add(row)
    except IntegrityError:  # assigned meanwhile by someone else
        raise Conflict(_taken(row), reason="number_taken", field="number") from None


def _taken(row: Number) -> str:
    what = f"{row.number} keyword {row.keyword}" if row.keyword else row.number
    return f"{what} is already assigned"


async def release_number(session: AsyncSession, number: str, keyword: str | None = None) -> Number:
    repo = NumberRepository(session)
    row = await repo.find(normalise_number(number), normalise_keyword(keyword))
    if row is None:
        raise NotFound(f"{number} is not assigned", reason="unknown_number", field="number")
    await repo.remove(row)
    return row


def match(numbers: Sequence[Number], supplier_id: int | None, text: str) -> Number | None:
    """The assignment an inbound message to one number goes to: its first word's keyword,
    else the number's keyword-less row; an assignment tied to a supplier only takes that
    supplier's messages."""
    usable = [n for n in numbers if n.supplier_id is None or n.supplier_id == supplier_id]
    word = keyword_of(text)
    by_keyword = {n.keyword: n for n in usable}
    if word and word in by_keyword:
        return by_keyword[word]
    return by_keyword.get("")


# --- receiving ----------------------------------------------------------------------------


async def receive(
    session: AsyncSession,
    clock: Clock,
    supplier_id: int | None,
    items: Sequence[InboundItem],
    *,
    dedupe_window: timedelta = DEFAULT_DEDUPE_WINDOW,
    hooks: Sequence[InboundHook] = (),
) -> list[StoredInbound | None]:
    """Store what a supplier delivered; one answer per item, in order: the message (a part
    that completed one gives the whole message), or None for a part still waiting.

    A message already stored (same supplier message id, or the same SMPP PDU within
    `dedupe_window`) is answered with its first row, `duplicate` set, and nothing is sent
    to the client again.
    """
    repo = InboundRepository(session)
    now = clock.now()
    whole: list[InboundMo | None] = []
    for item in items:
        whole.append(
            await _piece(repo, supplier_id, item) if isinstance(item, InboundPiece) else item
        )
    recipients = {normalise_recipient(m.recipient) for m in whole if m is not None}
    assignments: dict[str, list[Number]] = {}
    for number in await NumberRepository(session).of_recipients(recipients):
        assignments.setdefault(number.number, []).append(number)
    answers: list[StoredInbound | None] = []
    new: list[StoredInbound] = []
    for mo in whole:
        if mo is None:
            answers.append(None)
            continue
        stored = await _store(repo, supplier_id, mo, assignments, now, dedupe_window)
        answers.append(stored)
        if not stored.duplicate:
            new.append(stored)
    if new:
        await _pass_on(session, clock, new)
        for hook in hooks:
            await hook(session, clock, new)
    return answers


def normalise_recipient(number: str) -> str:
    """A recipient as a supplier wrote it, brought to the numbers' form (kept as is when it
    is not a number: an unrouted message keeps whatever it was sent to)."""
    try:
        return normalise_number(number)
    except InvalidRequest:
        return number.strip()[:MAX_NUMBER]


async def give_up_parts(
    session: AsyncSession,
    clock: Clock,
    *,
    after: timedelta = PARTS_TIMEOUT,
    hooks: Sequence[InboundHook] = (),
) -> dict[int, list[StoredInbound]]:
    """Long messages whose missing parts did not come within `after` of their first: stored
    with the parts that came, rather than kept waiting forever (the sweeper calls this);
    what was stored, by supplier."""
    repo = InboundRepository(session)
    stored: dict[int, list[StoredInbound]] = {}
    for supplier_id, assembly in await repo.stale_assemblies(clock.now() - after, 100):
        parts = await repo.parts(supplier_id, assembly)
        if not parts:  # pragma: no cover - taken by a part that completed it meanwhile
            continue
        mo = _joined(parts, assembly)
        await repo.drop_parts([p.id for p in parts])
        # A part the SMSC sent again after its message was whole (our answer was lost) is
        # no message of its own: the whole one was stored around the time it came.
        around = mo.received_at - DEFAULT_DEDUPE_WINDOW
        if mo.fingerprint and await repo.by_fingerprint(supplier_id, mo.fingerprint, around):
            continue
        taken = await receive(
            session, clock, supplier_id, [mo], dedupe_window=timedelta(0), hooks=hooks
        )
        stored.setdefault(supplier_id, []).extend(s for s in taken if s)
    return stored


def _joined(parts: Sequence[Any], assembly: str) -> InboundMo:
    first: dict[int, Any] = {}
    for part in parts:  # a part sent again is kept once (its first copy)
        first.setdefault(part.seqnum, part)
    ordered = [first[n] for n in sorted(first)]
    return InboundMo(
        sender=ordered[0].sender,
        recipient=ordered[0].recipient,
        text=join_leniently([WirePart(None, p.units, p.alphabet) for p in ordered]),
        received_at=min(p.received_at for p in ordered),
        fingerprint=f"parts:{assembly}"[:64],
        parts=len(ordered),
    )


async def _piece(
    repo: InboundRepository, supplier_id: int | None, piece: InboundPiece
) -> InboundMo | None:
    """Keep one part; the message when it was the last one missing."""
    assert supplier_id is not None, "parts come from SMPP suppliers"
    await repo.lock_assembly(supplier_id, piece.assembly)
    await repo.add_part(
        {
            "supplier_id": supplier_id,
            "assembly": piece.assembly,
            "seqnum": piece.seqnum,
            "total": piece.total,
            "sender": piece.sender[:32],
            "recipient": piece.recipient[:32],
            "units": piece.units,
            "alphabet": piece.alphabet,
            "received_at": piece.received_at,
        }
    )
    parts = await repo.parts(supplier_id, piece.assembly)
    if len({part.seqnum for part in parts}) < piece.total:
        return None
    await repo.drop_parts([p.id for p in parts])
    return _joined(parts, piece.assembly)


async def _store(
    repo: InboundRepository,
    supplier_id: int | None,
    mo: InboundMo,
    assignments: dict[str, list[Number]],
    now: datetime,
    dedupe_window: timedelta,
) -> StoredInbound:
    number = normalise_recipient(mo.recipient)
    sender = normalise_recipient(mo.sender)
    if supplier_id is not None and mo.fingerprint and dedupe_window > timedelta(0):
        seen = await repo.by_fingerprint(supplier_id, mo.fingerprint, now - dedupe_window)
        if seen is not None:
            return StoredInbound(
                seen, None, number, None, sender, mo.text, mo.parts, mo.received_at, True
            )
    owner = match(assignments.get(number, []), supplier_id, mo.text)
    keyword = owner.keyword or None if owner is not None else None
    client_id = owner.client_id if owner is not None else None
    text = mo.text[:MAX_TEXT]
    row: dict[str, Any] = {
        "client_id": client_id,
        "supplier_id": supplier_id,
        "supplier_message_id": mo.supplier_message_id,
        "fingerprint": mo.fingerprint,
        "sender": sender,
        "recipient": number,
        "keyword": keyword,
        "text": text,
        "parts": mo.parts,
        "received_at": mo.received_at,
        "created_at": now,
    }
    inbound_id = await repo.insert(row)
    if inbound_id is None:
        assert mo.supplier_message_id is not None, "only a supplier id conflicts"
        seen = await repo.by_supplier_ref(supplier_id, mo.supplier_message_id)
        assert seen is not None
        return StoredInbound(
            seen, None, number, None, sender, mo.text, mo.parts, mo.received_at, True
        )
    return StoredInbound(
        inbound_id,
        client_id,
        number,
        keyword,
        sender,
        text,
        mo.parts,
        mo.received_at,
    )


async def _pass_on(session: AsyncSession, clock: Clock, new: Sequence[StoredInbound]) -> None:
    """The webhook to each client's mo_url and the deliver_sm for its SMPP binds."""
    routed = [m for m in new if m.client_id is not None]
    if not routed:
        return
    owners = await InboundRepository(session).owners({m.client_id for m in routed if m.client_id})
    by_schedule: dict[tuple[int, ...], list[ClientEvent]] = {}
    to_smpp: list[tuple[int, int, datetime]] = []
    for stored in routed:
        owner = owners.get(stored.client_id or 0)
        if owner is None:  # pragma: no cover - the number's client exists (foreign key)
            continue
        if owner.mo_url:
            schedule = tuple(_schedule_of(owner))
            by_schedule.setdefault(schedule, []).append(
                ClientEvent(
                    owner.client_id,
                    INBOUND_EVENT,
                    orjson.dumps(inbound_body(stored)).decode(),
                    owner.mo_url,
                )
            )
        if owner.smpp:
            to_smpp.append((owner.client_id, stored.id, stored.received_at))
    for schedule, events in by_schedule.items():
        await enqueue_client_events(session, clock, events, schedule=schedule)
    await enqueue_smpp_inbound(session, clock.now(), to_smpp)


def _schedule_of(owner: Owner) -> list[int]:
    """The client's own retry schedule, as its delivery webhooks use."""
    try:
        return parse_schedule(owner.retry_schedule)
    except InvalidRequest:
        return list(PRESETS[DEFAULT_SCHEDULE])


class InboundView(Protocol):
    """What a rendering needs: an InboundMessage row or a StoredInbound."""

    @property
    def id(self) -> int: ...
    @property
    def sender(self) -> str: ...
    @property
    def keyword(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def parts(self) -> int: ...
    @property
    def received_at(self) -> datetime: ...


def inbound_body(message: InboundView, recipient: str | None = None) -> dict[str, Any]:
    """The ketchup-style JSON of an inbound message: the webhook's body and one item of
    `GET /rest/sms/inbound` (field table in docs/inbound.md)."""
    return {
        "id": str(message.id),
        "message_type": "inbound",
        "msisdn": message.sender,
        "sender": message.sender,
        "recipient": recipient if recipient is not None else _recipient(message),
        "keyword": message.keyword,
        "text": message.text,
        "parts": message.parts,
        "time_in": message.received_at.strftime(TIME_FORMAT),
    }


def _recipient(message: InboundView) -> str:
    return str(getattr(message, "recipient", None) or getattr(message, "number", ""))
