"""Route choice: the most specific route wins, then the highest priority."""

from __future__ import annotations

from datetime import UTC, datetime

from tidings.routing.models import Route
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
