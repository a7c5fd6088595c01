"""Route choice: the most specific route wins, then the highest priority."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tidings.numbering import Destination, parse_msisdn
from tidings.routing.models import Route
from tidings.routing.plan import (
    CostTable,
    FxTable,
    Health,
    LoadMeter,
    RouteRow,
    RoutingPlan,
    UnitCost,
)
from tidings.routing.service import RouteTable

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def route(
    supplier: int, *, country: str | None = None, prefix: str | None = None, priority: int = 0
) -> Route:
    return Route(
        type="sms",
        supplier_id=supplier,
        country=country,
        prefix=prefix,
        priority=priority,
        created_at=NOW,
    )


def test_prefix_beats_country_beats_default() -> None:
    table = RouteTable.of(
        [
            route(1),
            route(2, country="UA"),
            route(3, prefix="38097"),
            route(4, prefix="380971"),
        ]
    )
    assert table.choose("380971234567", "UA") == 4  # the longest prefix
    assert table.choose("380972234567", "UA") == 3
    assert table.choose("380502234567", "UA") == 2
    assert table.choose("46701234567", "SE") == 1


def test_priority_breaks_ties_and_no_route_is_none() -> None:
    table = RouteTable.of([route(1, country="UA", priority=1), route(2, country="UA", priority=5)])
    assert table.choose("380972234567", "UA") == 2
    assert table.choose("46701234567", "SE") is None
    assert RouteTable.of([]).choose("46701234567", "SE") is None


def test_a_prefix_route_is_also_bound_by_its_country() -> None:
    table = RouteTable.of([route(7, country="UA", prefix="3")])
    assert table.choose("380972234567", "UA") == 7
    assert table.choose("33612345678", "FR") is None


def test_retryable_codes_make_refusals_temporary() -> None:
    from tidings.connectors.http import HttpConnector
    from tidings.connectors.smpp.connector import parse_options

    smpp = parse_options(
        {"host": "127.0.0.1", "system_id": "x", "password": "y", "retryable": "0x58,0x08"}
    )
    assert {0x58, 0x08} <= smpp.retry_errors
    http = HttpConnector(1, {"url": "http://127.0.0.1:1", "api_key": "k", "retryable": "7"}, None)  # type: ignore[arg-type]
    assert 7 in http.retry_codes


def _destination(msisdn: str) -> Destination:
    return parse_msisdn(msisdn)


def test_overflow_passes_on_when_the_first_is_at_its_limit_this_second() -> None:
    moment = [100.0]
    rows = [
        RouteRow(1, 1, "UA", None, 10, overflow=True),
        RouteRow(2, 2, "UA", None, 5, overflow=True),
    ]
    plan = RoutingPlan.of(rows, throughput={1: 2.0, 2: None}, load=LoadMeter(lambda: moment[0]))
    chosen = [plan.decide(_destination("380971234567")).supplier_id for _ in range(4)]
    assert chosen == [1, 1, 2, 2]
    moment[0] += 1  # a new second: the first has room again
    assert plan.decide(_destination("380971234567")).supplier_id == 1


def test_without_overflow_the_first_takes_everything() -> None:
    rows = [RouteRow(1, 1, "UA", None, 10), RouteRow(2, 2, "UA", None, 5)]
    plan = RoutingPlan.of(rows, throughput={1: 1.0})
    assert {plan.decide(_destination("380971234567")).supplier_id for _ in range(5)} == {1}


def test_out_of_routing_is_skipped_and_when_all_are_out_the_first_waits() -> None:
    rows = [RouteRow(1, 1, "UA", None, 10), RouteRow(2, 2, None, None, 0)]
    plan = RoutingPlan.of(rows, health={1: Health("open")})
    decision = plan.decide(_destination("380971234567"))
    assert decision.supplier_id == 2 and [c.supplier_id for c in decision.candidates] == [1, 2]
    assert plan.failover(_destination("380971234567"), 2, draining=True) is None
    everyone_out = RoutingPlan.of(rows, health={1: Health("open"), 2: Health("open")})
    decision = everyone_out.decide(_destination("380971234567"))
    assert decision.supplier_id == 1 and "waits for its probe" in decision.reason


def test_failover_moves_forward_only_unless_draining() -> None:
    rows = [RouteRow(1, 1, "UA", None, 10), RouteRow(2, 2, "UA", None, 5)]
    plan = RoutingPlan.of(rows)
    number = _destination("380971234567")
    forward = plan.failover(number, 1)
    assert forward is not None and forward.supplier_id == 2
    assert plan.failover(number, 2) is None  # the last one retries itself
    back = plan.failover(number, 2, draining=True)
    assert back is not None and back.supplier_id == 1


def test_fx_converts_both_ways_to_micro_units() -> None:
    fx = FxTable([("EUR", "USD", Decimal("1.08"))])
    assert fx.convert(Decimal("0.01"), "EUR", "USD") == Decimal("0.010800")
    assert fx.convert(Decimal("0.0105"), "USD", "EUR") == Decimal("0.009722")
    assert fx.convert(Decimal("1"), "EUR", "GBP") is None


def test_the_most_specific_cost_wins() -> None:
    costs = CostTable(
        [
            (1, "sms", "UA", "", "", Decimal("0.03"), "EUR"),
            (1, "sms", "UA", "255", "", Decimal("0.02"), "EUR"),
            (1, "sms", "UA", "255", "03", Decimal("0.01"), "EUR"),
        ]
    )
    assert costs.cost(1, "sms", "UA", "25503") == UnitCost(Decimal("0.01"), "EUR")
    assert costs.cost(1, "sms", "UA", "25501") == UnitCost(Decimal("0.02"), "EUR")
    assert costs.cost(1, "sms", "UA", None) == UnitCost(Decimal("0.03"), "EUR")
    assert costs.cost(2, "sms", "UA", "25503") is None
