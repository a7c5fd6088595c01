"""One round's figures, the table, and the Tidings / Kannel ratios."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench.e2e.loadgen import LoadResult


@dataclass(frozen=True, slots=True)
class RoundResult:
    system: str  # "tidings" or "kannel"
    label: str
    number: int
    requests: int
    accepted: int  # answers that said "accepted" (wrk's Lua check)
    refused: int  # answers that did not (non-2xx, or an error body)
    socket_errors: int
    load_seconds: float
    accepted_rate: float
    p50_ms: float
    p99_ms: float
    smsc_submits: int
    smsc_receipts: int
    smsc_binds: int
    stored: int | None  # Tidings: messages in its database at the end
    callbacks: int
    finals: int  # messages with a final callback
    duplicates: int
    unparsed: int
    kinds: dict[str, int]
    unfinished: int  # accepted (by any count) without a final callback at the end
    drained: bool
    drain_seconds: float
    final_seconds: float  # load start to the last final callback
    final_rate: float
    gateway_cpu_seconds: float
    cpu_ms_per_message: float
    db_cpu_seconds: float | None  # PostgreSQL: its backends for the gateway's database
    db_ms_per_message: float | None
    window_seconds: float
    wrk_cores: float
    smsc_cores: float
    receiver_cores: float
    load_average: tuple[float, float]

    @classmethod
    def build(
        cls,
        *,
        system: str,
        label: str,
        number: int,
        load: LoadResult,
        callbacks: dict[str, Any],
        smsc: dict[str, Any],
        stored: int | None,
        drained: bool,
        drain_seconds: float,
        window_seconds: float,
        gateway_cpu: float,
        db_cpu: float | None,
        peer_cpu: dict[str, float],
        load_average: tuple[float, float],
    ) -> RoundResult:
        finals = int(callbacks["finals"])
        last_final = callbacks.get("last_final_at")
        final_seconds = float(last_final) - load.started_at if last_final else 0.0
        submits = int(smsc.get("submits", 0))
        expected = max(load.accepted, submits, stored or 0)
        return cls(
            system=system,
            label=label,
            number=number,
            requests=load.requests,
            accepted=load.accepted,
            refused=load.refused,
            socket_errors=load.socket_errors,
            load_seconds=load.seconds,
            accepted_rate=load.accepted_rate,
            p50_ms=load.p50_ms,
            p99_ms=load.p99_ms,
            smsc_submits=submits,
            smsc_receipts=int(smsc.get("receipts", 0)),
            smsc_binds=int(smsc.get("binds", 0)),
            stored=stored,
            callbacks=int(callbacks["callbacks"]),
            finals=finals,
            duplicates=int(callbacks["duplicates"]),
            unparsed=int(callbacks["unparsed"]),
            kinds=dict(callbacks["kinds"]),
            unfinished=max(0, expected - finals),
            drained=drained,
            drain_seconds=drain_seconds,
            final_seconds=final_seconds,
            final_rate=finals / final_seconds if final_seconds > 0 else 0.0,
            gateway_cpu_seconds=gateway_cpu,
            cpu_ms_per_message=gateway_cpu * 1000 / finals if finals else 0.0,
            db_cpu_seconds=db_cpu,
            db_ms_per_message=db_cpu * 1000 / finals if db_cpu is not None and finals else None,
            window_seconds=window_seconds,
            wrk_cores=load.cpu_seconds / load.seconds if load.seconds > 0 else 0.0,
            smsc_cores=peer_cpu.get("smsc", 0.0) / window_seconds if window_seconds else 0.0,
            receiver_cores=(
                peer_cpu.get("receiver", 0.0) / window_seconds if window_seconds else 0.0
            ),
            load_average=load_average,
        )

    def one_line(self) -> str:
        state = "drained" if self.drained else "NOT drained"
        return (
            f"{self.label}: accepted {self.accepted} ({self.accepted_rate:,.0f}/s), "
            f"final callbacks {self.finals} ({self.final_rate:,.0f}/s), "
            f"{self.cpu_ms_per_message:.2f} ms CPU/msg, {state} after {self.drain_seconds:.1f} s"
        )


COLUMNS = [
    ("system", 40),
    ("round", 5),
    ("accepted/s", 10),
    ("final cb/s", 10),
    ("CPU ms/msg", 10),
    ("DB ms/msg", 9),
    ("accepted", 8),
    ("finals", 8),
    ("refused", 7),
    ("unfinished", 10),
    ("dup", 5),
    ("drain s", 8),
    ("wrk/smsc/recv cores", 19),
    ("load avg", 10),
]


def _row(r: RoundResult) -> list[str]:
    drain = f"{r.drain_seconds:.1f}" + ("" if r.drained else "!")
    return [
        r.label,
        str(r.number),
        f"{r.accepted_rate:,.0f}",
        f"{r.final_rate:,.0f}",
        f"{r.cpu_ms_per_message:.2f}",
        "-" if r.db_ms_per_message is None else f"{r.db_ms_per_message:.2f}",
        str(r.accepted),
        str(r.finals),
        str(r.refused + r.socket_errors),
        str(r.unfinished),
        str(r.duplicates),
        drain,
        f"{r.wrk_cores:.2f}/{r.smsc_cores:.2f}/{r.receiver_cores:.2f}",
        f"{r.load_average[0]:.1f}→{r.load_average[1]:.1f}",
    ]


def summarize(results: list[RoundResult]) -> dict[str, Any]:
    """Medians per system, and Tidings / Kannel of final callbacks/s and of CPU per message."""
    summary: dict[str, Any] = {}
    for system in ("kannel", "tidings"):
        rounds = [r for r in results if r.system == system]
        if rounds:
            summary[system] = {
                "label": rounds[0].label,
                "final_rate": statistics.median(r.final_rate for r in rounds),
                "accepted_rate": statistics.median(r.accepted_rate for r in rounds),
                "cpu_ms_per_message": statistics.median(r.cpu_ms_per_message for r in rounds),
                # Drained rounds: what never got a final callback is lost. Rounds whose drain
                # timed out: still due, not provably lost.
                "lost": sum(r.unfinished for r in rounds if r.drained),
                "still_due": sum(r.unfinished for r in rounds if not r.drained),
                "duplicates": sum(r.duplicates for r in rounds),
            }
    if "kannel" in summary and "tidings" in summary:
        kannel, tidings = summary["kannel"], summary["tidings"]
        if kannel["final_rate"]:
            summary["ratio_final_rate"] = tidings["final_rate"] / kannel["final_rate"]
        if kannel["cpu_ms_per_message"]:
            summary["ratio_cpu_per_message"] = (
                tidings["cpu_ms_per_message"] / kannel["cpu_ms_per_message"]
            )
    return summary


def print_table(results: list[RoundResult]) -> None:
    print(" | ".join(name.ljust(width) for name, width in COLUMNS))
    print("-+-".join("-" * width for _, width in COLUMNS))
    for result in results:
        cells = _row(result)
        print(
            " | ".join(cell.ljust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))
        )
    print()
    for result in results:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.kinds.items()))
        stored = f", {result.stored} stored" if result.stored is not None else ""
        print(
            f"{result.label} #{result.number}: callbacks {result.callbacks} ({kinds}), "
            f"SMSC {result.smsc_binds} bind(s), {result.smsc_submits} submits / "
            f"{result.smsc_receipts} receipts{stored}, "
            f"p50/p99 {result.p50_ms:.1f}/{result.p99_ms:.1f} ms, gateway CPU "
            f"{result.gateway_cpu_seconds:.1f} s over {result.window_seconds:.1f} s"
        )
    summary = summarize(results)
    if "ratio_final_rate" in summary:
        print(
            f"\nTidings / Kannel: final callbacks/s x{summary['ratio_final_rate']:.2f}"
            + (
                f", CPU per message x{summary['ratio_cpu_per_message']:.2f}"
                if "ratio_cpu_per_message" in summary
                else ""
            )
            + " (medians over rounds)"
        )
    print("(DB ms/msg: CPU of the PostgreSQL backends serving the gateway, per message)")
    print("(! after drain s: the drain timed out; 'unfinished' then counts what was still due)")
