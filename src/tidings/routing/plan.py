"""Choosing suppliers for a number: candidates in order, costs, health and limits (pure).

A `RoutingPlan` is a snapshot (routes, supplier costs, exchange rates, circuit breakers,
throughput) kept in memory for TIDINGS_CACHE_TTL seconds, like the price list: choosing a
supplier touches no database. The same code answers acceptance (which supplier first),
failover (which next) and `tidings routes explain` (every candidate and why), so the
preview cannot disagree with what happens (docs/routing.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tidings.connectors.hlr.networks import NetworkTable
from tidings.db.base import MONEY_SCALE
from tidings.numbering import Destination

LCR = "lcr"
PRIORITY = "priority"
STRATEGIES = (PRIORITY, LCR)


class RouteLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def supplier_id(self) -> int: ...

    @property
    def country(self) -> str | None: ...

    @property
    def prefix(self) -> str | None: ...

    @property
    def priority(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RouteRow:
    """What a plan needs of a route (a plain copy: no ORM object outlives its session)."""

    id: int
    supplier_id: int
    country: str | None
    prefix: str | None
    priority: int
    strategy: str = PRIORITY
    hlr_routing: bool = False
    overflow: bool = False

    @property
    def group(self) -> tuple[str, str]:
        return (self.prefix or "", self.country or "")

    @classmethod
    def of(cls, route: RouteLike) -> RouteRow:
        if isinstance(route, RouteRow):
            return route
        return cls(
            route.id,
            route.supplier_id,
            route.country,
            route.prefix,
            route.priority or 0,
            getattr(route, "strategy", None) or PRIORITY,
            bool(getattr(route, "hlr_routing", False)),
            bool(getattr(route, "overflow", False)),
        )


@dataclass(frozen=True, slots=True)
class UnitCost:
    """What a supplier charges for one part."""

    cost: Decimal
    currency: str


class CostTable:
    """Supplier costs by (supplier, type, country) and then by network: MCCMNC, MCC, ""."""

    def __init__(self, rows: Iterable[tuple[int, str, str, str, str, Decimal, str]] = ()) -> None:
        self._by: dict[tuple[int, str, str], dict[str, UnitCost]] = {}
        for supplier_id, type_, country, mcc, mnc, cost, currency in rows:
            key = mcc + mnc if mcc else ""
            self._by.setdefault((supplier_id, type_, country), {})[key] = UnitCost(cost, currency)

    def __bool__(self) -> bool:
        return bool(self._by)

    def cost(
        self, supplier_id: int, type_: str, country: str, network: str | None
    ) -> UnitCost | None:
        """The most specific cost: the number's network (MCC+MNC), its MCC, its country."""
        table = self._by.get((supplier_id, type_, country))
        if table is None:
            return None
        if network:
            found = table.get(network) or table.get(network[:3])
            if found is not None:
                return found
        return table.get("")

    def by_network(self, supplier_id: int, type_: str, country: str) -> bool:
        """Whether any cost of this supplier to this country is per network."""
        return any(self._by.get((supplier_id, type_, country), {}))


class FxTable:
    """1 base = rate quote; converts either way, exactly, to 6 decimals (micro-units)."""

    def __init__(self, rates: Iterable[tuple[str, str, Decimal]] = ()) -> None:
        self._rates = {(base, quote): rate for base, quote, rate in rates}

    def convert(self, amount: Decimal, source: str, target: str) -> Decimal | None:
        if source == target:
            return amount
        rate = self._rates.get((source, target))
        if rate is not None:
            return (amount * rate).quantize(MONEY_SCALE)
        inverse = self._rates.get((target, source))
        if inverse:
            return (amount / inverse).quantize(MONEY_SCALE)
        return None


@dataclass(frozen=True, slots=True)
class Health:
    """A supplier's breaker as the snapshot saw it, and its recent submit success rate."""

    state: str = "closed"  # closed, half (probing: in routing), open (out of routing)
    success_rate: float = 1.0
    probe_at: datetime | None = None
    reason: str | None = None

    @property
    def up(self) -> bool:
        return self.state != "open"


class LoadMeter:
    """Messages routed to each supplier in the current second, in this process.

    Overflow (docs/routing.md) compares it with the supplier's throughput: a supplier given
    its messages-per-second already this second is "at its limit", and an overflow route
    passes the next message to the next candidate instead of queueing it behind them.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._second = 0
        self._counts: dict[int, int] = {}

    def _roll(self) -> None:
        second = int(self._now())
        if second != self._second:
            self._second = second
            self._counts = {}

    def at_limit(self, supplier_id: int, throughput: float | None) -> bool:
        if throughput is None:
            return False
        self._roll()
        return self._counts.get(supplier_id, 0) >= throughput

    def add(self, supplier_id: int, count: int = 1) -> None:
        self._roll()
        self._counts[supplier_id] = self._counts.get(supplier_id, 0) + count


@dataclass(slots=True)
class Candidate:
    supplier_id: int
    route_id: int
    priority: int
    strategy: str
    cost: UnitCost | None  # in the supplier's currency
    comparable_cost: Decimal | None  # in the group's currency, for least-cost ordering
    up: bool
    throughput: float | None
    at_limit: bool
    success_rate: float


@dataclass(slots=True)
class Decision:
    """The supplier chosen (None: no route), with every candidate in order, and why."""

    supplier_id: int | None
    cost: UnitCost | None
    candidates: tuple[Candidate, ...]
    network: str | None
    reason: str
    hlr_routing: bool = False


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """The active routes of one message type, most specific group first, with what they
    need to order candidates. `choose` is the old one-supplier answer."""

    routes: tuple[RouteRow, ...]
    type_: str = "sms"
    costs: CostTable = field(default_factory=CostTable)
    fx: FxTable = field(default_factory=FxTable)
    health: dict[int, Health] = field(default_factory=dict)
    throughput: dict[int, float | None] = field(default_factory=dict)
    load: LoadMeter = field(default_factory=LoadMeter)
    networks: NetworkTable | None = None  # MCCMNC of a number's carrier; None: no networks
    names: dict[int, str] = field(default_factory=dict)
    # Nothing to weigh (set by `of`): acceptance takes the first matching route, as before.
    simple: bool = False
    # Candidate orders by (matching routes, country, network): the snapshot does not change,
    # so each distinct destination shape is ordered once (the acceptance hot path).
    _orders: dict[tuple[object, ...], tuple[Candidate, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Matching routes (by position) -> their groups, and whether the first asks for HLR
    # routing or overflow.
    _shapes: dict[tuple[int, ...], tuple[list[list[RouteRow]], bool, bool]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def name(self, supplier_id: int) -> str:
        return self.names.get(supplier_id, f"#{supplier_id}")

    @classmethod
    def of(
        cls,
        routes: Sequence[RouteLike],
        *,
        type_: str = "sms",
        costs: CostTable | None = None,
        fx: FxTable | None = None,
        health: dict[int, Health] | None = None,
        throughput: dict[int, float | None] | None = None,
        load: LoadMeter | None = None,
        networks: NetworkTable | None = None,
        names: dict[int, str] | None = None,
    ) -> RoutingPlan:
        def specificity(route: RouteRow) -> tuple[int, int, str, str, int, int]:
            prefix_len = len(route.prefix or "")
            return (
                -prefix_len,
                0 if route.country else 1,
                route.prefix or "",
                route.country or "",
                -route.priority,
                route.id,
            )

        rows = tuple(sorted((RouteRow.of(r) for r in routes), key=specificity))
        health = health or {}
        simple = not costs and all(
            r.strategy == PRIORITY
            and not r.hlr_routing
            and not r.overflow
            and health.get(r.supplier_id, Health()).up
            for r in rows
        )
        return cls(
            rows,
            type_,
            costs or CostTable(),
            fx or FxTable(),
            health,
            throughput or {},
            load or LoadMeter(),
            networks,
            names or {},
            simple,
        )

    # --- The answers ------------------------------------------------------------------

    def choose(self, msisdn: str, country: str) -> int | None:
        """The supplier of the most specific matching route by priority (no costs)."""
        for route in self.routes:
            if self._matches(route, msisdn, country):
                return route.supplier_id
        return None

    def wants_hlr(self, msisdn: str, country: str) -> bool:
        """Whether the number's first matching group routes by a cached HLR result."""
        first = self._groups(msisdn, country)
        return bool(first) and any(r.hlr_routing for r in first[0])

    def decide(
        self, destination: Destination, hlr_network: str | None = None, *, explain: bool = False
    ) -> Decision:
        """Every candidate in order and the one chosen: the first in routing, not at its
        limit when the route overflows. With every candidate out of routing the first is
        still chosen: the message waits for its breaker's probe rather than failing.
        `explain` fills in each candidate's current limit (the preview)."""
        msisdn, country = destination.msisdn, destination.iso
        if self.simple and not explain:
            # No costs, no strategies, every supplier in routing: the first matching route.
            supplier_id = self.choose(msisdn, country)
            if supplier_id is None:
                return Decision(None, None, (), None, "no route")
            return Decision(supplier_id, None, (), None, "first in routing")
        matched = self._match(msisdn, country)
        if not matched:
            return Decision(None, None, (), None, "no route")
        shape = self._shapes.get(matched)
        if shape is None:
            if len(self._shapes) >= 100_000:
                self._shapes.clear()
            groups = self._groups(msisdn, country)
            shape = self._shapes[matched] = (
                groups,
                any(r.hlr_routing for r in groups[0]),
                any(r.overflow for r in groups[0]),
            )
        groups, hlr, overflow = shape
        network = hlr_network if hlr and hlr_network else self._network(destination)
        candidates = self._candidates(groups, country, network, matched)
        if explain:
            candidates = tuple(
                _limited(c, overflow and self.load.at_limit(c.supplier_id, c.throughput))
                for c in candidates
            )
        chosen = None
        for candidate in candidates:
            if candidate.up and not (
                overflow and self.load.at_limit(candidate.supplier_id, candidate.throughput)
            ):
                chosen = candidate
                break
        reason = "first in routing"
        if chosen is None:
            chosen = next((c for c in candidates if c.up), None)
            reason = "every candidate at its limit: the first in routing"
        if chosen is None:
            chosen = candidates[0]
            reason = "every candidate out of routing: the first waits for its probe"
        if chosen.strategy == LCR:
            reason = "cheapest in routing" if reason == "first in routing" else reason
        if overflow and chosen.throughput is not None and not explain:
            self.load.add(chosen.supplier_id)
        return Decision(chosen.supplier_id, chosen.cost, candidates, network, reason, hlr)

    def failover(
        self, destination: Destination, current: int, *, draining: bool = False
    ) -> Candidate | None:
        """The next candidate in routing after `current`; None: stay (retry it later).

        A temporary failure moves forward only (two failing suppliers do not bounce a
        message between them without back-off); a supplier out of routing (`draining`)
        hands its messages to any candidate in routing."""
        groups = self._groups(destination.msisdn, destination.iso)
        if not groups:
            return None
        candidates = self._candidates(
            groups,
            destination.iso,
            self._network(destination),
            self._match(destination.msisdn, destination.iso),
        )
        ids = [c.supplier_id for c in candidates]
        position = ids.index(current) if current in ids else -1
        after = list(candidates[position + 1 :])
        before = list(candidates[:position]) if draining and position >= 0 else []
        return next((c for c in after + before if c.up and c.supplier_id != current), None)

    def message_cost(
        self, unit: UnitCost | None, parts: int, currency: str | None
    ) -> tuple[Decimal | None, str | None]:
        """What a message of `parts` costs, in the client's price `currency` when a rate
        converts it (so margins are plain sums), else in the supplier's own currency."""
        if unit is None:
            return None, None
        cost = unit.cost * parts
        if currency is not None:
            converted = self.fx.convert(cost, unit.currency, currency)
            if converted is not None:
                return converted, currency
        return cost, unit.currency

    def cost_of(self, supplier_id: int, destination: Destination) -> UnitCost | None:
        return self.costs.cost(supplier_id, self.type_, destination.iso, self._network(destination))

    # --- Internals ----------------------------------------------------------------------

    @staticmethod
    def _matches(route: RouteRow, msisdn: str, country: str) -> bool:
        if route.prefix and not msisdn.startswith(route.prefix):
            return False
        return not (route.country and route.country != country)

    def _groups(self, msisdn: str, country: str) -> list[list[RouteRow]]:
        groups: list[list[RouteRow]] = []
        for route in self.routes:
            if not self._matches(route, msisdn, country):
                continue
            if groups and groups[-1][0].group == route.group:
                groups[-1].append(route)
            else:
                groups.append([route])
        return groups

    def _network(self, destination: Destination) -> str | None:
        """The MCCMNC of the carrier the number range was allocated to (numbering plan)."""
        if not self.costs or destination.carrier is None or self.networks is None:
            return None
        return self.networks.mccmnc(destination.iso, destination.country_code, destination.carrier)

    def _match(self, msisdn: str, country: str) -> tuple[int, ...]:
        """The positions of the routes that match: the key of a destination's shape."""
        return tuple(
            i
            for i, r in enumerate(self.routes)
            if (not r.prefix or msisdn.startswith(r.prefix))
            and (not r.country or r.country == country)
        )

    def _candidates(
        self,
        groups: list[list[RouteRow]],
        country: str,
        network: str | None,
        matched: tuple[int, ...],
    ) -> tuple[Candidate, ...]:
        key = (matched, country, network)
        found = self._orders.get(key)
        if found is None:
            if len(self._orders) >= 100_000:  # bounded: a new snapshot starts afresh anyway
                self._orders.clear()
            found = self._orders[key] = self._order(groups, country, network)
        return found

    def _order(
        self, groups: list[list[RouteRow]], country: str, network: str | None
    ) -> tuple[Candidate, ...]:
        ordered: list[Candidate] = []
        seen: set[int] = set()
        for group in groups:
            members = [self._candidate(r, country, network) for r in group]
            if any(r.strategy == LCR for r in group):
                members = self._by_cost(members)
            for candidate in members:
                if candidate.supplier_id not in seen:
                    seen.add(candidate.supplier_id)
                    ordered.append(candidate)
        return tuple(ordered)

    def _candidate(self, route: RouteRow, country: str, network: str | None) -> Candidate:
        health = self.health.get(route.supplier_id, Health())
        throughput = self.throughput.get(route.supplier_id)
        return Candidate(
            supplier_id=route.supplier_id,
            route_id=route.id,
            priority=route.priority,
            strategy=route.strategy,
            cost=self.costs.cost(route.supplier_id, self.type_, country, network),
            comparable_cost=None,
            up=health.up,
            throughput=throughput,
            at_limit=False,  # filled in by decide(explain=True): it changes by the second
            success_rate=health.success_rate,
        )

    def _by_cost(self, members: list[Candidate]) -> list[Candidate]:
        """Cheapest first (in the currency of the highest-priority costed member); ties by
        priority, then recent success rate; members with no known cost last."""
        reference = next((m.cost.currency for m in members if m.cost is not None), None)
        priced: list[Candidate] = []
        for member in members:
            comparable = None
            if member.cost is not None and reference is not None:
                comparable = self.fx.convert(member.cost.cost, member.cost.currency, reference)
            priced.append(_with_comparable(member, comparable))
        return sorted(
            priced,
            key=lambda c: (
                c.comparable_cost is None,
                c.comparable_cost or Decimal(0),
                -c.priority,
                -c.success_rate,
                c.route_id,
            ),
        )


def _limited(candidate: Candidate, at_limit: bool) -> Candidate:
    return Candidate(
        candidate.supplier_id,
        candidate.route_id,
        candidate.priority,
        candidate.strategy,
        candidate.cost,
        candidate.comparable_cost,
        candidate.up,
        candidate.throughput,
        at_limit,
        candidate.success_rate,
    )


def _with_comparable(candidate: Candidate, comparable: Decimal | None) -> Candidate:
    return Candidate(
        candidate.supplier_id,
        candidate.route_id,
        candidate.priority,
        candidate.strategy,
        candidate.cost,
        comparable,
        candidate.up,
        candidate.throughput,
        candidate.at_limit,
        candidate.success_rate,
    )
