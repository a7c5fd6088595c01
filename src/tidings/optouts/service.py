"""Opt-out rules: STOP/START keywords from inbound messages, and the list's edits.

The caller owns the transaction (a request handler, the CLI, the inbound path). Numbers are
stored in the form acceptance gives a destination (`parse_msisdn`: E.164 digits, no '+'),
so the check at acceptance compares like with like.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.errors import InvalidRequest
from tidings.numbering import InvalidMsisdn, parse_msisdn
from tidings.optouts.keywords import Keyword, KeywordSet
from tidings.optouts.models import OptOut
from tidings.optouts.repository import Confirmations, OptOutRepository

KEYWORD = "keyword"
API = "api"
CLI = "cli"
IMPORT = "import"
SOURCES = (KEYWORD, API, CLI, IMPORT)

MAX_PAGE = 10_000
# Rows per INSERT of an import: five parameters a row stays well under SQLite's 32,766.


@dataclass(frozen=True, slots=True)
class OptOutOutcome:
    """What an inbound keyword did.

    `changed` is False when the number was already in that state (a second STOP). `reply`
    is the client's confirmation for this action, to send back to the number as a reply to
    the inbound message; None when the client has none. It is given on a repeated keyword
    too: someone who sends STOP again most likely did not see the first confirmation.
    """

    action: Keyword
    client_id: int
    msisdn: str
    changed: bool
    reply: str | None


def normalize_msisdn(raw: str, *, where: str = "") -> str:
    """A number as acceptance stores destinations; InvalidRequest (bad_msisdn) otherwise."""
    try:
        return parse_msisdn(raw).msisdn
    except InvalidMsisdn as error:
        raise InvalidRequest(
            f"{where}invalid msisdn {raw!r}: {error}", reason="bad_msisdn", field="msisdn"
        ) from None


async def apply_inbound_keyword(
    session: AsyncSession,
    *,
    client_id: int,
    msisdn: str,
    text: str,
    keywords: KeywordSet,
    now: datetime,
) -> OptOutOutcome | None:
    """Act on an inbound message of `msisdn` to `client_id`, in the caller's transaction.

    Call it once the inbound message is stored and matched to its client. A text that is an
    opt-out keyword puts the sender on the client's list, an opt-in keyword takes it off;
    anything else (or a sender that is no valid mobile number, which nothing can be sent
    to anyway) returns None and changes nothing.
    """
    action = keywords.classify(text)
    if action is None:
        return None
    try:
        number = parse_msisdn(msisdn).msisdn
    except InvalidMsisdn:
        return None
    repository = OptOutRepository(session)
    if action is Keyword.OPT_OUT:
        changed = bool(
            await repository.add(
                client_id, [number], source=KEYWORD, at=now, keyword=text.strip()[:64]
            )
        )
    else:
        changed = bool(await repository.remove(client_id, [number]))
    confirmations = await repository.confirmations(client_id)
    reply = confirmations.optout if action is Keyword.OPT_OUT else confirmations.optin
    return OptOutOutcome(action, client_id, number, changed, reply)


@dataclass(frozen=True, slots=True)
class ListChange:
    """Numbers asked about, normalised, and the ones the list actually gained or lost."""

    msisdns: list[str]
    changed: list[str]


async def add_numbers(
    session: AsyncSession, client_id: int, raw: Sequence[str], *, source: str, now: datetime
) -> ListChange:
    numbers = [normalize_msisdn(r) for r in raw]
    added = await OptOutRepository(session).add(client_id, numbers, source=source, at=now)
    return ListChange(numbers, added)


async def remove_numbers(session: AsyncSession, client_id: int, raw: Sequence[str]) -> ListChange:
    numbers = [normalize_msisdn(r) for r in raw]
    return ListChange(numbers, await OptOutRepository(session).remove(client_id, numbers))


def parse_optout_csv(text: str) -> list[str]:
    """Numbers from a CSV file: the `msisdn` column if the first row names one, else the
    first column; blank lines are skipped. A bad number fails the whole file, with its line."""
    reader = csv.reader(io.StringIO(text))
    numbers: list[str] = []
    column: int | None = None
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if column is None:
            header = [cell.strip().lower() for cell in row]
            column = header.index("msisdn") if "msisdn" in header else 0
            if "msisdn" in header:
                continue
        cell = row[column].strip() if column < len(row) else ""
        numbers.append(normalize_msisdn(cell, where=f"line {reader.line_num}: "))
    return numbers


async def import_numbers(
    session: AsyncSession, client_id: int, text: str, *, now: datetime
) -> ListChange:
    """Add every number of a CSV file (all or nothing); numbers listed already stay as they
    were."""
    numbers = parse_optout_csv(text)
    added = await OptOutRepository(session).add(client_id, numbers, source=IMPORT, at=now)
    return ListChange(numbers, added)


async def list_numbers(
    session: AsyncSession, client_id: int, *, after: str | None = None, limit: int = 1_000
) -> list[OptOut]:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be 1-{MAX_PAGE}", reason="invalid", field="limit")
    return await OptOutRepository(session).page(client_id, after=after, limit=limit)


async def find_number(session: AsyncSession, client_id: int, msisdn: str) -> OptOut | None:
    return await OptOutRepository(session).find(client_id, msisdn)


async def count_numbers(session: AsyncSession, client_id: int) -> int:
    return await OptOutRepository(session).count(client_id)


async def set_confirmations(
    session: AsyncSession, client_id: int, *, optout: str | None, optin: str | None
) -> Confirmations:
    """Set a client's replies ('' clears one, None leaves it as it is)."""
    for text in (optout, optin):
        if text is not None and len(text) > 1_000:
            raise InvalidRequest("a confirmation reply is at most 1,000 characters")
    return await OptOutRepository(session).set_confirmations(client_id, optout=optout, optin=optin)
