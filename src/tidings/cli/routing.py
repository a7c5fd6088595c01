"""Routing commands: supplier costs, exchange rates, route previews, margin reports."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.cli.common import JSON_OPTION, clock, emit, fail, import_csv_file, run_in_transaction
from tidings.routing.costs import import_costs, list_costs, list_rates, set_rate
from tidings.routing.explain import explain_route
from tidings.routing.margins import MarginRepository, summarize

costs_app = typer.Typer(
    help="What suppliers charge us, per country and network.", no_args_is_help=True
)
fx_app = typer.Typer(help="Exchange rates between currencies.", no_args_is_help=True)
report_app = typer.Typer(help="Operators' reports: margins.", no_args_is_help=True)


@costs_app.command("import")
def costs_import(file: Path, as_json: bool = JSON_OPTION) -> None:
    """Import `supplier,type,country,mcc,mnc,cost,currency` rows (mnc optional); each named
    supplier's costs are replaced by the file's."""
    import_csv_file(file, import_costs, as_json)


@costs_app.command("list")
def costs_list(as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "supplier_id": c.supplier_id,
                "type": c.type,
                "country": c.country,
                "mcc": c.mcc,
                "mnc": c.mnc,
                "cost": c.cost,
                "currency": c.currency,
            }
            for c in await list_costs(session)
        ]

    emit(run_in_transaction(work), as_json, title="Supplier costs")


@fx_app.command("set")
def fx_set(base: str, quote: str, rate: str, as_json: bool = JSON_OPTION) -> None:
    """1 BASE = RATE QUOTE, e.g. `tidings fx set EUR USD 1.08`."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        found = await set_rate(session, base, quote, rate, clock.now())
        return {"base": found.base, "quote": found.quote, "rate": found.rate}

    emit(run_in_transaction(work), as_json)


@fx_app.command("list")
def fx_list(as_json: bool = JSON_OPTION) -> None:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {"base": r.base, "quote": r.quote, "rate": r.rate, "updated_at": r.updated_at}
            for r in await list_rates(session)
        ]

    emit(run_in_transaction(work), as_json, title="Exchange rates")


def routes_explain(
    client: int = typer.Option(..., "--client", help="Client id (its tariff gives the price)."),
    msisdn: str = typer.Option(..., "--msisdn"),
    type_: str = typer.Option("sms", "--type"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Which supplier a message would go to now, and every candidate: cost, health, limit."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        return await explain_route(session, clock, client_id=client, msisdn=msisdn, type_=type_)

    found = run_in_transaction(work)
    if as_json:
        emit(found, True)
        return
    emit({k: v for k, v in found.items() if k != "candidates"}, False)
    emit(found["candidates"], False, title="Candidates, in order")


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not an ISO date or time")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@report_app.command("margins")
def report_margins(
    since: str = typer.Option(..., "--from", help="ISO date or time (UTC), inclusive."),
    until: str = typer.Option(..., "--to", help="ISO date or time (UTC), exclusive."),
    by: str = typer.Option("client", "--by", help="client, supplier or country."),
    out: Path | None = typer.Option(
        None, "--csv", help="Also write every message with its cost and margin to this file."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Price, cost and margin of the messages suppliers took, accepted in [--from, --to)."""
    start, end = _moment(since, "--from"), _moment(until, "--to")
    if end <= start:
        fail("--to must be after --from")

    async def work(session: AsyncSession) -> dict[str, Any]:
        margins = MarginRepository(session)
        rows = await margins.totals(start, end)
        written = 0
        if out is not None:
            written = await write_margin_csv(margins, start, end, out)
        report: dict[str, Any] = {"from": start, "to": end, "by": by}
        report["rows"] = summarize(rows, by)
        if out is not None:
            report["csv"] = {"path": str(out), "messages": written}
        return report

    found = run_in_transaction(work)
    if as_json:
        emit(found, True)
        return
    emit(
        found["rows"],
        False,
        title=f"Margins by {by}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}",
    )


MARGIN_CSV_FIELDS = (
    "message_id",
    "client_id",
    "supplier",
    "msisdn",
    "country",
    "time_in",
    "status",
    "price",
    "currency",
    "cost",
    "cost_currency",
    "margin",
)


async def write_margin_csv(
    margins: MarginRepository, start: datetime, end: datetime, path: Path
) -> int:
    """The operators' per-message export: the client's columns plus supplier, cost, margin."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, MARGIN_CSV_FIELDS)
        writer.writeheader()
        async for row in margins.messages(start, end):
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
            count += 1
    return count
