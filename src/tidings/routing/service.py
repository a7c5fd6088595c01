"""Choosing a supplier for each message, and managing suppliers and routes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.service import Credentials, new_credentials, password_matches
from tidings.billing.service import MESSAGE_TYPES
from tidings.clock import Clock
from tidings.errors import AuthError, InvalidRequest, NotFound
from tidings.routing.models import Route, Supplier
from tidings.routing.plan import STRATEGIES, RoutingPlan
from tidings.routing.repository import RouteRepository, SupplierRepository

SUPPLIER_KINDS = ("simulator", "http", "smpp", "viber_simulator", "hlr_simulator", "hlr_http")
# Kinds that carry Viber traffic (routes of type "viber" should point at these).
VIBER_SUPPLIER_KINDS = ("viber_simulator",)
# HLR providers (docs/hlr.md): routes of type "hlr" point at these, and only these.
HLR_SUPPLIER_KINDS = ("hlr_simulator", "hlr_http")


# The routes of one message type, with what orders their candidates (plan.py).
RouteTable = RoutingPlan


async def load_route_table(session: AsyncSession, type_: str) -> RouteTable:
    return RouteTable.of(await RouteRepository(session).active(type_), type_=type_)


async def create_supplier(
    session: AsyncSession,
    clock: Clock,
    *,
    name: str,
    kind: str,
    options: dict[str, Any] | None = None,
    throughput: float | None = None,
) -> Supplier:
    if kind not in SUPPLIER_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(SUPPLIER_KINDS)}")
    suppliers = SupplierRepository(session)
    if await suppliers.get_by_name(name) is not None:
        raise InvalidRequest(f"a supplier named {name!r} exists already", reason="duplicate")
    return await suppliers.add(
        Supplier(
            name=name,
            kind=kind,
            options=options or {},
            throughput=throughput,
            enabled=True,
            created_at=clock.now(),
        )
    )


async def find_supplier(session: AsyncSession, name_or_id: str) -> Supplier:
    suppliers = SupplierRepository(session)
    supplier = await suppliers.get_by_name(name_or_id)
    if supplier is None and name_or_id.isdigit():
        supplier = await suppliers.get(int(name_or_id))
    if supplier is None:
        raise NotFound(f"no supplier {name_or_id!r}")
    return supplier


async def create_route(
    session: AsyncSession,
    clock: Clock,
    *,
    type_: str,
    supplier: str,
    country: str | None = None,
    prefix: str | None = None,
    priority: int = 0,
    strategy: str = "priority",
    hlr_routing: bool = False,
    overflow: bool = False,
) -> Route:
    if type_ not in MESSAGE_TYPES:
        raise InvalidRequest(f"type must be one of {', '.join(MESSAGE_TYPES)}")
    if strategy not in STRATEGIES:
        raise InvalidRequest(f"strategy must be one of {', '.join(STRATEGIES)}")
    if prefix is not None and not (prefix.isdigit() and 1 <= len(prefix) <= 15):
        raise InvalidRequest("prefix must be 1 to 15 digits")
    if country is not None and not (len(country) == 2 and country.isalpha()):
        raise InvalidRequest("country must be an ISO 3166 alpha-2 code")
    found = await find_supplier(session, supplier)
    if (type_ == "viber") != (found.kind in VIBER_SUPPLIER_KINDS):
        raise InvalidRequest(
            f"a {type_} route cannot go to supplier {found.name!r} of kind {found.kind!r}"
        )
    if (type_ == "hlr") != (found.kind in HLR_SUPPLIER_KINDS):
        raise InvalidRequest(
            f"a {type_} route cannot go to supplier {found.name!r} of kind {found.kind!r}"
        )
    return await RouteRepository(session).add(
        Route(
            type=type_,
            supplier_id=found.id,
            country=country.upper() if country else None,
            prefix=prefix,
            priority=priority,
            created_at=clock.now(),
            strategy=strategy,
            hlr_routing=hlr_routing,
            overflow=overflow,
        )
    )


async def update_supplier(
    session: AsyncSession,
    name_or_id: str,
    *,
    options: dict[str, Any] | None = None,
    throughput: float | None = None,
) -> Supplier:
    """Merge options into the supplier's (an empty value removes one); set its throughput.

    Running workers pick the change up when they next refresh their suppliers' connectors
    (a restart of the lane: docs/routing.md)."""
    supplier = await find_supplier(session, name_or_id)
    if options:
        merged = dict(supplier.options or {})
        for key, value in options.items():
            if value in ("", None):
                merged.pop(key, None)
            else:
                merged[key] = value
        if "retryable" in merged:
            merged["retryable"] = ",".join(sorted(parse_codes(str(merged["retryable"]))))
        supplier.options = merged
    if throughput is not None:
        if throughput <= 0:
            raise InvalidRequest("throughput must be above 0")
        supplier.throughput = throughput
    await session.flush()
    return supplier


def parse_codes(text: str) -> frozenset[str]:
    """`retryable=0x58,0x08`: refusal codes (hex, decimal, or an SMPP status name such as
    ESME_RTHROTTLED) that fail over rather than fail the message."""
    codes: set[str] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            int(item, 0)
        except ValueError:
            if not (item.replace("_", "").isalnum() and item.upper().startswith("ESME_")):
                raise InvalidRequest(
                    f"retryable code {item!r} is not a number (0x58, 88) or an ESME_ name",
                    reason="bad_option",
                ) from None
        codes.add(item)
    return frozenset(codes)


# --- Credentials suppliers post delivery receipts with (seeds 001/002) ------------------


async def issue_dlr_credentials(session: AsyncSession, name_or_id: str) -> Credentials:
    """New `_login` / `_password` for the supplier's /api/dlr calls; old ones stop working."""
    supplier = await find_supplier(session, name_or_id)
    credentials, supplier.dlr_password_hash = new_credentials("dlr", supplier.id)
    supplier.dlr_login = credentials.login
    await session.flush()
    return credentials


async def authenticate_dlr(session: AsyncSession, login: str, password: str) -> Supplier:
    """The supplier these DLR credentials belong to; AuthError when they belong to nobody.

    A disabled supplier still authenticates: disabling stops routing new messages to it,
    while reports for what it already took keep coming.
    """
    supplier = await SupplierRepository(session).get_by_dlr_login(login) if login else None
    matches = password_matches(password, supplier.dlr_password_hash if supplier else None)
    if supplier is None or not matches:
        raise AuthError("wrong DLR login or password")
    return supplier
