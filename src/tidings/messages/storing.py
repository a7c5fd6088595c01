"""Storing accepted messages: `write_accepted` charges and stores any number of prepared
requests (messages/acceptance.py) in the caller's one transaction, in bulk.

Numbers on their client's opt-out list are taken out (docs/optouts.md), references checked,
balances debited, messages, tasks, dispatch jobs and ledger entries inserted. Each request
succeeds or fails on its own (a request is all or nothing but for its opted-out numbers; its
neighbours in the transaction are not affected). The `AcceptQueue` (writer.py) uses that to
commit many concurrent API requests at once; `accept_sms` is one request in the caller's
transaction (CLI, SMPP, tests).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.repository import ClientRepository
from tidings.accounts.service import Caller
from tidings.billing.repository import LedgerRepository
from tidings.clock import Clock
from tidings.delivery.repository import DispatchRepository
from tidings.errors import Conflict, InsufficientFunds, OptedOut, TidingsError
from tidings.hlr.repository import HlrRepository
from tidings.messages.acceptance import (
    HLR_ROUTING_TTL,
    SMS,
    Acceptance,
    AcceptedItem,
    Limits,
    PreparedSms,
    PricedItem,
    Quote,
    RefusedItem,
    SmsRequest,
    fail_at,
    fake_acceptance,
    prepare_sms,
    with_supplier,
)
from tidings.messages.admission_repository import AdmissionRepository
from tidings.messages.catalog import load_catalog
from tidings.messages.repository import MessageRepository
from tidings.messages.status import Status


@dataclass(slots=True)
class _Admission:
    """The requests of one write, and what became of each."""

    prepared: list[PreparedSms]
    outcome: list[Acceptance | TidingsError | None] = field(default_factory=list)
    refused: dict[int, list[RefusedItem]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outcome = [None] * len(self.prepared)

    def open(self) -> list[int]:
        return [i for i, result in enumerate(self.outcome) if result is None]


async def write_accepted(
    session: AsyncSession,
    clock: Clock,
    prepared: Sequence[PreparedSms],
    *,
    check_optouts: bool = True,
    one_statement: bool = False,
) -> list[Acceptance | TidingsError]:
    """Charge and store prepared requests in the caller's transaction, in bulk.

    Returns one result per request, in order: its Acceptance (with the numbers refused one
    by one, `refused`), or the error that refused it (a reference in use, a balance that does
    not cover it, no number left that has not opted out). Raises only for faults of the
    whole write (the database); a concurrent writer taking a reference between the check and
    the insert surfaces as IntegrityError, and the caller retries the requests one by one.

    `one_statement` (PostgreSQL, in autocommit: messages/writer.py): the write is one
    statement, which raises UncoveredRound, having written nothing, when a client's balance
    does not cover its total; the caller then writes the round in a transaction.
    """
    admission = _Admission(list(prepared))
    admissions = AdmissionRepository(session)
    facts = await admissions.round_facts(
        # Off only for the confirmation of an opt-out (inbound/hooks.py).
        _numbers_by_client(admission) if check_optouts else {},
        _references_by_client(admission),
        _ids_needed(admission),
    )
    _refuse_opted_out(admission, facts.opted_out)
    _refuse_used_references(admission, facts.used_references)
    admitted = admission.open()
    if not admitted:
        return _outcomes(admission)
    now = clock.now()
    rerouted = await _route_by_hlr(session, clock, admission.prepared, admitted)
    if one_statement:
        rows = _rows(admission, admitted, rerouted, iter(facts.ids), now)
        await admissions.write_round(
            _totals(admission),
            rows.tasks,
            rows.task_ids,
            rows.messages,
            rows.message_ids,
            rows.ledger,
            now,
        )
        return await _settle(session, admission, rows)
    paid = await _debit_whole_totals(session, admission)
    await _refuse_uncovered(session, admission, paid)
    admitted = admission.open()
    if not admitted:
        return _outcomes(admission)
    messages = MessageRepository(session)
    ids = facts.ids or await messages.take_ids(_ids_needed(admission))
    rows = _rows(admission, admitted, rerouted, iter(ids), now)
    await messages.insert_tasks(rows.tasks, rows.task_ids)
    await messages.insert_many(rows.messages, rows.message_ids)
    await LedgerRepository(session).add_many(rows.ledger, now)
    await _debit(session, admission, admitted, paid)
    return await _settle(session, admission, rows)


@dataclass(slots=True)
class _Rows:
    """What a write inserts for its admitted requests, with their ids, and what each
    request's Acceptance says."""

    tasks: list[dict[str, object]] = field(default_factory=list)
    task_ids: list[int] = field(default_factory=list)
    messages: list[dict[str, object]] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)
    ledger: list[tuple[int, Decimal, str, str | None]] = field(default_factory=list)
    acceptances: dict[int, Acceptance] = field(default_factory=dict)
    suppliers: set[int] = field(default_factory=set)


def _rows(
    admission: _Admission,
    admitted: list[int],
    rerouted: dict[tuple[int, int], PricedItem],
    ids: Iterator[int],
    now: datetime,
) -> _Rows:
    """The rows of the admitted requests: a task per batch request (ids first), a message
    per number, a ledger charge per request."""
    prepared = admission.prepared
    rows = _Rows()
    task_of: dict[int, int | None] = {}
    for i in admitted:
        task_of[i] = None
        if prepared[i].request.is_batch:
            task_id = next(ids)
            task_of[i] = task_id
            rows.tasks.append(_task_row(prepared[i], now))
            rows.task_ids.append(task_id)
    for i in admitted:
        request, quote = prepared[i].request, prepared[i].quote
        # Inserted into the dispatch queue: its job is `due_at` on the row itself.
        due_at = _send_at(request, now) or now
        accepted: list[AcceptedItem] = []
        for item in quote.items:
            item = rerouted.get((i, item.index), item)
            assert item.supplier_id is not None, "prepared items are routed"
            message_id = next(ids)
            rows.messages.append(
                {**_message_row(prepared[i], item, task_of[i], now), "due_at": due_at}
            )
            rows.message_ids.append(message_id)
            rows.suppliers.add(item.supplier_id)
            accepted.append(
                AcceptedItem(message_id, item.item.reference, item.price, item.currency, item.parts)
            )
        reference = f"task:{task_of[i]}" if task_of[i] else f"message:{accepted[0].id}"
        rows.ledger.append((prepared[i].caller.client_id, -quote.total_price, "charge", reference))
        rows.acceptances[i] = Acceptance(
            accepted, quote.total_price, quote.currency, task_of[i], admission.refused.get(i, [])
        )
    return rows


async def _settle(
    session: AsyncSession, admission: _Admission, rows: _Rows
) -> list[Acceptance | TidingsError]:
    """After the inserts: wake the suppliers' lanes at the commit, run the requests'
    `after_write` hooks, and give every request its outcome."""
    DispatchRepository(session).enqueued(rows.suppliers)
    for i, acceptance in rows.acceptances.items():
        admission.outcome[i] = acceptance
        after_write = admission.prepared[i].request.after_write
        if after_write is not None:
            await after_write(session, [item.id for item in acceptance.items])
    return _outcomes(admission)


def _outcomes(admission: _Admission) -> list[Acceptance | TidingsError]:
    return [r for r in admission.outcome if r is not None]


def _totals(admission: _Admission) -> dict[int, Decimal]:
    """What each client owes for its open requests."""
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for i in admission.open():
        request = admission.prepared[i]
        totals[request.caller.client_id] += request.quote.total_price
    return totals


def _numbers_by_client(admission: _Admission) -> dict[int, set[str]]:
    numbers: dict[int, set[str]] = defaultdict(set)
    for i in admission.open():
        request = admission.prepared[i]
        numbers[request.caller.client_id].update(
            item.destination.msisdn for item in request.quote.items
        )
    return numbers


def _references_by_client(admission: _Admission) -> dict[int, set[str]]:
    wanted: dict[int, set[str]] = defaultdict(set)
    for request in admission.prepared:
        for priced in request.quote.items:
            if priced.item.reference is not None:
                wanted[request.caller.client_id].add(priced.item.reference)
    return wanted


def _ids_needed(admission: _Admission) -> int:
    """At most the ids the write inserts: a message per number, a task per batch request."""
    return sum(
        len(admission.prepared[i].quote.items) + admission.prepared[i].request.is_batch
        for i in admission.open()
    )


def _refuse_opted_out(admission: _Admission, listed: set[tuple[int, str]]) -> None:
    """Take the numbers on their client's opt-out list out of each request (`listed`: read
    for the whole write at once). A batch goes on without them, priced without them; a
    request left with no number is refused whole."""
    if not listed:
        return
    for i in admission.open():
        prepared = admission.prepared[i]
        client_id, request = prepared.caller.client_id, prepared.request
        refused = [
            RefusedItem(
                item.index,
                item.destination.msisdn,
                item.item.reference,
                OptedOut(item.destination.msisdn, where=fail_at(item.index, request, "")),
            )
            for item in prepared.quote.items
            if (client_id, item.destination.msisdn) in listed
        ]
        if not refused:
            continue
        if len(refused) == len(prepared.quote.items):
            first = refused[0]
            admission.outcome[i] = (
                OptedOut(
                    first.msisdn,
                    message=f"every phone of the request has opted out "
                    f"(phones[{first.index}]: {first.msisdn}, …)",
                )
                if request.is_batch and len(refused) > 1
                else first.error
            )
            continue
        admission.prepared[i] = without_refused(prepared, refused)
        admission.refused[i] = refused


def without_refused(prepared: PreparedSms, refused: Sequence[RefusedItem]) -> PreparedSms:
    """The request as stored: without its refused numbers, its total without their prices."""
    if not refused:
        return prepared
    gone = {r.index for r in refused}
    quote = prepared.quote
    kept = [item for item in quote.items if item.index not in gone]
    total = sum((item.price for item in kept), Decimal(0))
    return replace(prepared, quote=Quote(kept, total, quote.currency, quote.tariff))


def _refuse_used_references(admission: _Admission, in_use: dict[int, set[str]]) -> None:
    used = {client_id: set(references) for client_id, references in in_use.items()}
    # References of requests admitted earlier in this same write count as used too.
    for i in admission.open():
        request = admission.prepared[i]
        taken = used.setdefault(request.caller.client_id, set())
        refs = [p.item.reference for p in request.quote.items if p.item.reference is not None]
        clash = next((ref for ref in refs if ref in taken), None)
        if clash is not None:
            admission.outcome[i] = Conflict(
                f"reference {clash!r} is used already", reason="duplicate_reference"
            )
            continue
        taken.update(refs)


async def _debit_whole_totals(session: AsyncSession, admission: _Admission) -> set[int]:
    """Debit each client's whole total at once where its balance covers it: the clients
    paid for. Nearly always all of them, and then one UPDATE per client is the whole
    balance check (a read and a later debit would be two statements). The row stays locked
    from here to the commit, a few statements later."""
    clients = ClientRepository(session)
    return {
        client_id
        for client_id, total in _totals(admission).items()
        if await clients.debit_if_covered(client_id, total)
    }


async def _refuse_uncovered(session: AsyncSession, admission: _Admission, paid: set[int]) -> None:
    """Admit each client's requests in order while its balance covers them (the clients in
    `paid` are debited for all of theirs already)."""
    clients = {admission.prepared[i].caller.client_id for i in admission.open()} - paid
    if not clients:
        return
    balances = await ClientRepository(session).balances(clients)
    for i in admission.open():
        request = admission.prepared[i]
        client_id = request.caller.client_id
        if client_id in paid:
            continue
        cost = request.quote.total_price
        if balances.get(client_id, Decimal(0)) < cost:
            admission.outcome[i] = InsufficientFunds(f"the balance does not cover {cost}")
            continue
        balances[client_id] -= cost


async def _debit(
    session: AsyncSession, admission: _Admission, admitted: list[int], paid: set[int]
) -> None:
    """Debit the clients not `paid` for yet last, so that their balance rows stay locked
    only from here to the commit."""
    spent: dict[int, Decimal] = defaultdict(Decimal)
    for i in admitted:
        client_id = admission.prepared[i].caller.client_id
        if client_id not in paid:
            spent[client_id] += admission.prepared[i].quote.total_price
    clients = ClientRepository(session)
    for client_id, amount in spent.items():
        if not await clients.debit_if_covered(client_id, amount):
            # Another process spent the money since we read the balance: the caller retries
            # the requests one by one, where this check decides for each.
            raise BalanceRace(client_id)


class BalanceRace(Exception):
    """Raised inside a write when a balance changed under it; the write is rolled back."""


def _task_row(prepared: PreparedSms, now: datetime) -> dict[str, object]:
    request = prepared.request
    first = request.items[0]
    same_text = request.destination == "phones"
    return {
        "client_id": prepared.caller.client_id,
        "destination": request.destination,
        "originator": first.originator if same_text else None,
        "body": first.body if same_text else None,
        "validity_hours": request.validity_hours,
        "total_price": prepared.quote.total_price,
        "currency": prepared.quote.currency,
        "created_at": now,
    }


def _message_row(
    prepared: PreparedSms, item: PricedItem, task_id: int | None, now: datetime
) -> dict[str, object]:
    request = prepared.request
    send_at = _send_at(request, now)
    return {
        "client_id": prepared.caller.client_id,
        "task_id": task_id,
        "channel": SMS,
        "source": request.source,
        "msisdn": item.destination.msisdn,
        "country": item.destination.iso,
        "reference": item.item.reference,
        "originator": item.item.originator,
        "body": item.item.body,
        "encoding": item.encoding,
        "parts": item.parts,
        "tariff": prepared.quote.tariff,
        "price": item.price,
        "currency": item.currency,
        "status": (Status.SCHEDULED if send_at else Status.QUEUED).value,
        "callback_url": request.callback_url,
        "supplier_id": item.supplier_id,
        "reply_to": item.item.reply_to,
        "cost": item.cost,
        "cost_currency": item.cost_currency,
        "send_at": send_at,
        "expires_at": request.expires_at
        or (send_at or now) + timedelta(hours=request.validity_hours),
        "time_in": now,
    }


def _send_at(request: SmsRequest, now: datetime) -> datetime | None:
    """When to send: None for now (a time in the past means now too)."""
    return request.send_at if request.send_at and request.send_at > now else None


async def accept_sms(
    session: AsyncSession,
    clock: Clock,
    caller: Caller,
    request: SmsRequest,
    limits: Limits,
) -> Acceptance:
    """Accept one request in the caller's transaction (CLI, SMPP, tests; the API batches)."""
    prepared = prepare_sms(await load_catalog(session), caller, request, limits)
    if caller.is_test:
        return fake_acceptance(prepared)
    try:
        [result] = await write_accepted(session, clock, [prepared])
    except BalanceRace:
        raise InsufficientFunds(
            f"the balance does not cover {prepared.quote.total_price}"
        ) from None
    except IntegrityError:  # a concurrent request took a reference after our check
        raise Conflict("a reference is used already", reason="duplicate_reference") from None
    if isinstance(result, TidingsError):
        raise result
    return result


async def _route_by_hlr(
    session: AsyncSession, clock: Clock, prepared: Sequence[PreparedSms], admitted: list[int]
) -> dict[tuple[int, int], PricedItem]:
    """Items whose route asks for HLR routing, chosen again by their numbers' latest HLR
    network (one query for the whole write; nothing when no route asks for it)."""
    wanted: dict[str, list[tuple[int, PricedItem]]] = defaultdict(list)
    for i in admitted:
        routes = prepared[i].routes
        if routes is None:
            continue
        for item in prepared[i].quote.items:
            if routes.wants_hlr(item.destination.msisdn, item.destination.iso):
                wanted[item.destination.msisdn].append((i, item))
    if not wanted:
        return {}
    networks = await HlrRepository(session).recent_networks(
        list(wanted), clock.now() - HLR_ROUTING_TTL
    )
    rerouted: dict[tuple[int, int], PricedItem] = {}
    for msisdn, network in networks.items():
        for i, item in wanted[msisdn]:
            routes = prepared[i].routes
            assert routes is not None
            decision = routes.decide(item.destination, hlr_network=network)
            if decision.supplier_id is not None:
                rerouted[(i, item.index)] = with_supplier(
                    routes, item, decision.supplier_id, decision.cost
                )
    return rerouted
