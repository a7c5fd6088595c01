"""Administration commands: clients, keys, prices, suppliers, routes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Client
from tidings.accounts.repository import ApiKeyRepository, ClientRepository
from tidings.accounts.service import (
    KeyKind,
    create_client,
    issue_dr_credentials,
    issue_key,
    issue_smpp_credentials,
    require_client,
    set_balance,
    top_up,
    validate_tariff,
)
from tidings.billing.repository import PriceRepository
from tidings.billing.service import MESSAGE_TYPES, import_prices
from tidings.cli.common import (
    JSON_OPTION,
    clock,
    emit,
    fail,
    import_csv_file,
    parse_options,
    run_in_transaction,
)
from tidings.errors import NotFound
from tidings.inbound.service import validate_mo_url
from tidings.optouts.service import set_confirmations
from tidings.routing.models import Supplier
from tidings.routing.repository import RouteRepository, SupplierRepository
from tidings.routing.service import (
    create_route,
    create_supplier,
    find_supplier,
    issue_dlr_credentials,
    update_supplier,
)
from tidings.viber.service import list_senders, register_sender, unregister_sender
from tidings.webhooks.schedules import normalize_schedule, schedule_after_format_change
from tidings.webhooks.service import ensure_secret, recent_deliveries, validate_format

clients_app = typer.Typer(help="Clients: accounts, balances, tariffs, keys.", no_args_is_help=True)
prices_app = typer.Typer(
    help="Price lists per message type, tariff and country.", no_args_is_help=True
)
suppliers_app = typer.Typer(help="Upstream suppliers.", no_args_is_help=True)
routes_app = typer.Typer(help="Routes from destinations to suppliers.", no_args_is_help=True)


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        fail(f"{text!r} is not an amount")
    if not value.is_finite() or value.as_tuple().exponent < -6:  # type: ignore[operator]
        fail(f"{text!r} is not an amount with at most 6 decimals")
    return value


def client_view(client: Client) -> dict[str, Any]:
    return {
        "id": client.id,
        "name": client.name,
        "balance": str(client.balance),
        "tariff": client.tariff,
        "blocked": client.blocked,
        "callback_url": client.callback_url,
        "mo_url": client.mo_url,
        "created_at": client.created_at,
    }


@clients_app.command("create")
def clients_create(
    name: str = typer.Option(..., "--name"),
    balance: str = typer.Option("0", "--balance", help="Opening balance in EUR."),
    tariff: int = typer.Option(0, "--tariff", min=0, max=9),
    callback_url: str | None = typer.Option(None, "--callback-url"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a client with a live and a test API key (shown once: only hashes are kept)."""
    amount = _money(balance)

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = await create_client(
            session, clock, name=name, balance=amount, tariff=tariff, callback_url=callback_url
        )
        return {"id": created.client.id, "live_key": created.live_key, "test_key": created.test_key}

    emit(run_in_transaction(work), as_json)


@clients_app.command("list")
def clients_list(as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [client_view(c) for c in await ClientRepository(session).list()]

    emit(run_in_transaction(work), as_json, title="Clients")


@clients_app.command("show")
def clients_show(client_id: int, as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> dict[str, Any]:
        return client_view(await require_client(session, client_id))

    emit(run_in_transaction(work), as_json)


def _set_blocked(client_id: int, blocked: bool, as_json: bool) -> None:
    async def work(session: AsyncSession) -> dict[str, Any]:
        client = await require_client(session, client_id)
        client.blocked = blocked
        await session.flush()
        return client_view(client)

    emit(run_in_transaction(work), as_json)


@clients_app.command("block")
def clients_block(client_id: int, as_json: bool = JSON_OPTION) -> None:
    """Block a client: every API call answers error 3."""
    _set_blocked(client_id, True, as_json)


@clients_app.command("unblock")
def clients_unblock(client_id: int, as_json: bool = JSON_OPTION) -> None:
    _set_blocked(client_id, False, as_json)


@clients_app.command("set-balance")
def clients_set_balance(client_id: int, amount: str, as_json: bool = JSON_OPTION) -> None:
    value = _money(amount)

    async def work(session: AsyncSession) -> dict[str, Any]:
        return client_view(await set_balance(session, clock, client_id, value))

    emit(run_in_transaction(work), as_json)


@clients_app.command("top-up")
def clients_top_up(client_id: int, amount: str, as_json: bool = JSON_OPTION) -> None:
    value = _money(amount)

    async def work(session: AsyncSession) -> dict[str, Any]:
        return client_view(await top_up(session, clock, client_id, value))

    emit(run_in_transaction(work), as_json)


@clients_app.command("update")
def clients_update(
    client_id: int,
    tariff: int | None = typer.Option(None, "--tariff", min=0, max=9),
    callback_url: str | None = typer.Option(None, "--callback-url", help="'' clears it."),
    name: str | None = typer.Option(None, "--name"),
    as_json: bool = JSON_OPTION,
    # Annotated, so that direct calls (set-tariff) get None rather than an OptionInfo.
    webhook_format: Annotated[
        str | None,
        typer.Option("--webhook-format", help="ketchup, ip1, hyber or smartswitch."),
    ] = None,
    retry_schedule: Annotated[
        str | None,
        typer.Option("--retry-schedule", help="ketchup, ip1, or seconds: '60,600,3600'."),
    ] = None,
    webhook_login: Annotated[
        str | None, typer.Option("--webhook-login", help="'' clears it.")
    ] = None,
    webhook_password: Annotated[
        str | None, typer.Option("--webhook-password", help="'' clears it.")
    ] = None,
    optout_confirmation: Annotated[
        str | None,
        typer.Option(
            "--optout-confirmation", help="Reply to a STOP keyword (docs/optouts.md); '' clears it."
        ),
    ] = None,
    optin_confirmation: Annotated[
        str | None,
        typer.Option("--optin-confirmation", help="Reply to a START keyword; '' clears it."),
    ] = None,
    mo_url: Annotated[
        str | None,
        typer.Option("--mo-url", help="Where inbound messages are POSTed; '' clears it."),
    ] = None,
) -> None:
    async def work(session: AsyncSession) -> dict[str, Any]:
        client = await require_client(session, client_id)
        if tariff is not None:
            client.tariff = validate_tariff(tariff)
        if callback_url is not None:
            client.callback_url = callback_url or None
        if name is not None:
            client.name = name
        if webhook_format is not None:
            new_format = validate_format(webhook_format)
            if retry_schedule is None:  # a format brings its provider's schedule along
                client.retry_schedule = schedule_after_format_change(
                    client.retry_schedule, client.webhook_format, new_format
                )
            client.webhook_format = new_format
        if retry_schedule is not None:
            client.retry_schedule = normalize_schedule(retry_schedule)
        if webhook_login is not None:
            client.webhook_login = webhook_login or None
        if webhook_password is not None:
            client.webhook_password = webhook_password or None
        if mo_url is not None:
            client.mo_url = validate_mo_url(mo_url)
        await session.flush()
        replies = await set_confirmations(
            session, client_id, optout=optout_confirmation, optin=optin_confirmation
        )
        return {
            **client_view(client),
            "webhook_format": client.webhook_format,
            "retry_schedule": client.retry_schedule,
            "webhook_login": client.webhook_login,
            "optout_confirmation": replies.optout,
            "optin_confirmation": replies.optin,
        }

    emit(run_in_transaction(work), as_json)


@clients_app.command("webhook-secret")
def clients_webhook_secret(
    client_id: int,
    rotate: bool = typer.Option(False, "--rotate", help="Replace the secret with a new one."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The secret webhooks are signed with (created if the client has none)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await require_client(session, client_id)
        return {"secret": await ensure_secret(session, client_id, rotate=rotate)}

    emit(run_in_transaction(work), as_json)


@clients_app.command("webhooks")
def clients_webhooks(
    client_id: int,
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recent webhook deliveries, newest first, with every attempt."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        await require_client(session, client_id)
        return await recent_deliveries(session, client_id, limit)

    emit(run_in_transaction(work), as_json, title="Webhook deliveries")


@clients_app.command("set-tariff")
def clients_set_tariff(client_id: int, tariff: int, as_json: bool = JSON_OPTION) -> None:
    clients_update(client_id, tariff=tariff, callback_url=None, name=None, as_json=as_json)


@clients_app.command("issue-key")
def clients_issue_key(
    client_id: int,
    kind: KeyKind = typer.Option(KeyKind.LIVE, "--kind"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue another API key (shown once)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await require_client(session, client_id)
        return {
            "client_id": client_id,
            "kind": kind.value,
            "key": await issue_key(session, clock, client_id, kind),
        }

    emit(run_in_transaction(work), as_json)


@clients_app.command("keys")
def clients_keys(client_id: int, as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        await require_client(session, client_id)
        return [
            {
                "id": key.id,
                "kind": key.kind,
                "hint": key.hint + "…",
                "created_at": key.created_at,
                "revoked_at": key.revoked_at,
            }
            for key in await ApiKeyRepository(session).list_for(client_id)
        ]

    emit(run_in_transaction(work), as_json, title="API keys")


@clients_app.command("revoke-key")
def clients_revoke_key(key_id: int, as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> dict[str, Any]:
        if not await ApiKeyRepository(session).revoke(key_id, clock.now()):
            raise NotFound(f"no active key {key_id}")
        return {"id": key_id, "revoked": True}

    emit(run_in_transaction(work), as_json)


@clients_app.command("dr-credentials")
def clients_dr_credentials(client_id: int, as_json: bool = JSON_OPTION) -> None:
    """Issue new HTTP Basic credentials for the delivery-report API (shown once).

    The client's previous DR credentials stop working.
    """

    async def work(session: AsyncSession) -> dict[str, Any]:
        issued = await issue_dr_credentials(session, client_id)
        return {"login": issued.login, "password": issued.password}

    emit(run_in_transaction(work), as_json)


@clients_app.command("smpp-credentials")
def clients_smpp_credentials(client_id: int, as_json: bool = JSON_OPTION) -> None:
    """Issue new SMPP bind credentials (shown once); the previous ones stop working."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        issued = await issue_smpp_credentials(session, client_id)
        return {"system_id": issued.login, "password": issued.password}

    emit(run_in_transaction(work), as_json)


@clients_app.command("viber-sender-add")
def clients_viber_sender_add(client_id: int, alpha_name: str, as_json: bool = JSON_OPTION) -> None:
    """Register an alpha name the client may send Viber messages from (error 45 otherwise)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        sender = await register_sender(session, clock, client_id, alpha_name)
        return {"client_id": sender.client_id, "alpha_name": sender.alpha_name}

    emit(run_in_transaction(work), as_json)


@clients_app.command("viber-sender-remove")
def clients_viber_sender_remove(
    client_id: int, alpha_name: str, as_json: bool = JSON_OPTION
) -> None:
    """Withdraw a registered Viber alpha name (messages already accepted still go)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await unregister_sender(session, client_id, alpha_name)
        return {"client_id": client_id, "alpha_name": alpha_name, "removed": True}

    emit(run_in_transaction(work), as_json)


@clients_app.command("viber-senders")
def clients_viber_senders(client_id: int, as_json: bool = JSON_OPTION) -> None:
    """The client's registered Viber alpha names."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {"alpha_name": s.alpha_name, "registered": s.created_at.isoformat()}
            for s in await list_senders(session, client_id)
        ]

    emit(run_in_transaction(work), as_json)


@prices_app.command("import")
def prices_import(file: Path, as_json: bool = JSON_OPTION) -> None:
    """Import `type,tariff,country,price,currency` rows; existing rows for a key are replaced."""
    import_csv_file(file, import_prices, as_json)


@prices_app.command("list")
def prices_list(
    type_: str = typer.Option("sms", "--type"),
    tariff: int = typer.Option(0, "--tariff", min=0, max=9),
    as_json: bool = JSON_OPTION,
) -> None:
    if type_ not in MESSAGE_TYPES:
        fail(f"--type must be one of {', '.join(MESSAGE_TYPES)}")

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "type": p.type,
                "tariff": p.tariff,
                "country": p.country,
                "mcc": p.mcc,
                "price": str(p.price),
                "currency": p.currency,
            }
            for p in await PriceRepository(session).for_tariff(type_, tariff)
        ]

    emit(run_in_transaction(work), as_json, title="Prices")


def supplier_view(supplier: Supplier) -> dict[str, Any]:
    return {
        "id": supplier.id,
        "name": supplier.name,
        "kind": supplier.kind,
        "throughput": supplier.throughput,
        "enabled": supplier.enabled,
        "options": supplier.options,
    }


@suppliers_app.command("create")
def suppliers_create(
    name: str = typer.Option(..., "--name"),
    kind: str = typer.Option(
        ...,
        "--kind",
        help="simulator, http, smpp, viber_simulator; HLR: hlr_simulator, hlr_http",
    ),
    option: list[str] = typer.Option([], "--option", help="key=value, repeatable."),
    throughput: float | None = typer.Option(None, "--throughput", help="Messages/s limit."),
    as_json: bool = JSON_OPTION,
) -> None:
    options = parse_options(option)

    async def work(session: AsyncSession) -> dict[str, Any]:
        supplier = await create_supplier(
            session, clock, name=name, kind=kind, options=options, throughput=throughput
        )
        if kind != "http":
            return {"id": supplier.id}
        # An HTTP supplier reports back through /api/dlr: give it credentials right away.
        issued = await issue_dlr_credentials(session, str(supplier.id))
        return {"id": supplier.id, "dlr_login": issued.login, "dlr_password": issued.password}

    emit(run_in_transaction(work), as_json)


@suppliers_app.command("update")
def suppliers_update(
    name: str,
    option: list[str] = typer.Option(
        [], "--option", help="key=value, repeatable; key= removes it (e.g. retryable=0x58,0x08)."
    ),
    throughput: float | None = typer.Option(None, "--throughput", help="Messages/s limit."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a supplier's options (merged into its own) or throughput."""
    options = parse_options(option)

    async def work(session: AsyncSession) -> dict[str, Any]:
        supplier = await update_supplier(session, name, options=options, throughput=throughput)
        return supplier_view(supplier)

    emit(run_in_transaction(work), as_json)


@suppliers_app.command("list")
def suppliers_list(as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [supplier_view(s) for s in await SupplierRepository(session).list()]

    emit(run_in_transaction(work), as_json, title="Suppliers")


def _set_enabled(name: str, enabled: bool, as_json: bool) -> None:
    async def work(session: AsyncSession) -> dict[str, Any]:
        supplier = await find_supplier(session, name)
        supplier.enabled = enabled
        await session.flush()
        return supplier_view(supplier)

    emit(run_in_transaction(work), as_json)


@suppliers_app.command("disable")
def suppliers_disable(name: str, as_json: bool = JSON_OPTION) -> None:
    _set_enabled(name, False, as_json)


@suppliers_app.command("enable")
def suppliers_enable(name: str, as_json: bool = JSON_OPTION) -> None:
    _set_enabled(name, True, as_json)


@suppliers_app.command("dlr-credentials")
def suppliers_dlr_credentials(name: str, as_json: bool = JSON_OPTION) -> None:
    """Issue new `_login` / `_password` for the supplier's /api/dlr calls (shown once).

    The supplier's previous DLR credentials stop working.
    """

    async def work(session: AsyncSession) -> dict[str, Any]:
        issued = await issue_dlr_credentials(session, name)
        return {"login": issued.login, "password": issued.password}

    emit(run_in_transaction(work), as_json)


@routes_app.command("create")
def routes_create(
    type_: str = typer.Option(..., "--type"),
    supplier: str = typer.Option(..., "--supplier", help="Supplier name or id."),
    country: str | None = typer.Option(None, "--country"),
    prefix: str | None = typer.Option(None, "--prefix"),
    priority: int = typer.Option(0, "--priority", help="Higher goes first (and fails over last)."),
    strategy: str = typer.Option(
        "priority", "--strategy", help="priority, or lcr: the cheapest for the number's network."
    ),
    hlr_routing: bool = typer.Option(
        False, "--hlr-routing", help="The network from a recent HLR result (ported numbers)."
    ),
    overflow: bool = typer.Option(
        False, "--overflow", help="A supplier at its throughput limit passes on to the next."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Route messages of a type to a supplier; routes of one prefix and country are one
    group of candidates (docs/routing.md)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        route = await create_route(
            session,
            clock,
            type_=type_,
            supplier=supplier,
            country=country,
            prefix=prefix,
            priority=priority,
            strategy=strategy,
            hlr_routing=hlr_routing,
            overflow=overflow,
        )
        return {"id": route.id}

    emit(run_in_transaction(work), as_json)


@routes_app.command("list")
def routes_list(as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "type": r.type,
                "supplier_id": r.supplier_id,
                "country": r.country,
                "prefix": r.prefix,
                "priority": r.priority,
                "strategy": r.strategy,
                "hlr_routing": r.hlr_routing,
                "overflow": r.overflow,
            }
            for r in await RouteRepository(session).list()
        ]

    emit(run_in_transaction(work), as_json, title="Routes")


@routes_app.command("delete")
def routes_delete(route_id: int, as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> dict[str, Any]:
        if not await RouteRepository(session).delete(route_id):
            raise NotFound(f"no route {route_id}")
        return {"id": route_id, "deleted": True}

    emit(run_in_transaction(work), as_json)
