"""Circuit breakers: a supplier that keeps failing is taken out of routing for a while.

The state is one row per supplier in `supplier_health`, so every worker process shares it:
each lane adds its batch's results in the transaction that records them (one locked read
and one write per batch, never per message). After the cool-down one lane claims the probe
(`probe_at` moves on atomically, so only one process probes), the breaker goes half-open
(back in routing, the lane sending one message at a time), and the next result decides:
an answer closes it, a failure opens it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.routing.models import SupplierHealth
from tidings.routing.plan import Health

CLOSED = "closed"
HALF = "half"
OPEN = "open"


@dataclass(frozen=True)
class BreakerPolicy:
    """From the supplier's options (`tidings suppliers update NAME --option k=v`)."""

    failures: int = 5  # consecutive failed messages that open the breaker
    rate: float = 0.5  # or this share of failures in the window...
    min_volume: int = 20  # ...over at least this many messages
    window: float = 60.0  # seconds
    cooldown: float = 30.0  # seconds out of routing before a probe
    enabled: bool = True  # `breaker=off`: never out of routing

    @classmethod
    def of(cls, options: dict[str, Any]) -> BreakerPolicy:
        default = cls()
        return cls(
            failures=max(1, int(options.get("breaker_failures", default.failures))),
            rate=min(1.0, max(0.0, float(options.get("breaker_rate", default.rate)))),
            min_volume=max(1, int(options.get("breaker_min_volume", default.min_volume))),
            window=max(1.0, float(options.get("breaker_window", default.window))),
            cooldown=max(0.1, float(options.get("breaker_cooldown", default.cooldown))),
            enabled=str(options.get("breaker", "on")).lower() not in ("off", "0", "false", "no"),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A breaker's state change, for the logs and the metrics (after the commit)."""

    supplier_id: int
    before: str
    after: str
    reason: str


async def ensure_rows(session: AsyncSession, supplier_ids: Sequence[int], now: datetime) -> None:
    """Give suppliers a (closed) breaker row; call in a transaction of its own."""
    table = cast(Table, SupplierHealth.__table__)
    existing = set(
        (
            await session.execute(
                select(table.c.supplier_id).where(table.c.supplier_id.in_(list(supplier_ids)))
            )
        ).scalars()
    )
    missing = [i for i in supplier_ids if i not in existing]
    for supplier_id in missing:
        try:
            async with session.begin_nested():
                session.add(
                    SupplierHealth(
                        supplier_id=supplier_id,
                        state=CLOSED,
                        consecutive_failures=0,
                        window_started=now,
                        window_total=0,
                        window_failed=0,
                        probe_at=None,
                        changed_at=now,
                        reason=None,
                    )
                )
        except IntegrityError:  # another process made it first
            pass


async def record_results(
    session: AsyncSession,
    supplier_id: int,
    policy: BreakerPolicy,
    now: datetime,
    *,
    answered: int,
    failed: int,
    last_error: str | None,
) -> Transition | None:
    """Add one batch's results (in the lane's recording transaction); the row is locked
    last in that transaction, so two lanes of the same supplier only queue on it."""
    if answered == 0 and failed == 0:
        return None
    row = (
        await session.execute(
            select(SupplierHealth)
            .where(SupplierHealth.supplier_id == supplier_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if now - row.window_started > timedelta(seconds=policy.window):
        row.window_started, row.window_total, row.window_failed = now, 0, 0
    row.window_total += answered + failed
    row.window_failed += failed
    row.consecutive_failures = failed if answered else row.consecutive_failures + failed
    before = row.state
    after, reason = before, row.reason
    if before == HALF:
        after = CLOSED if answered else OPEN
        reason = "probe answered" if answered else f"probe failed: {last_error}"
    elif before == CLOSED:
        if row.consecutive_failures >= policy.failures:
            after = OPEN
            reason = f"{row.consecutive_failures} failures in a row: {last_error}"
        elif (
            row.window_total >= policy.min_volume
            and row.window_failed / row.window_total > policy.rate
        ):
            after = OPEN
            reason = (
                f"{row.window_failed} of {row.window_total} failed in "
                f"{policy.window:g} s: {last_error}"
            )
    if after == before:
        return None
    row.state, row.reason, row.changed_at = after, (reason or "")[:200], now
    if after == OPEN:
        row.probe_at = now + timedelta(seconds=policy.cooldown)
    else:
        row.probe_at = None
        row.consecutive_failures = 0
        row.window_started, row.window_total, row.window_failed = now, 0, 0
    await session.flush()
    return Transition(supplier_id, before, after, row.reason)


async def claim_probe(
    session: AsyncSession, supplier_id: int, policy: BreakerPolicy, now: datetime
) -> Transition | None:
    """Half-open an open breaker whose cool-down is over; only one process wins it."""
    table = cast(Table, SupplierHealth.__table__)
    result = await session.execute(
        update(table)
        .where(
            table.c.supplier_id == supplier_id,
            table.c.state == OPEN,
            table.c.probe_at <= now,
        )
        .values(
            state=HALF,
            changed_at=now,
            # Should the probing process die, another may probe after one more cool-down.
            probe_at=now + timedelta(seconds=policy.cooldown),
            reason="cool-down over: probing",
        )
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return Transition(supplier_id, OPEN, HALF, "cool-down over: probing")


async def states(session: AsyncSession) -> dict[int, SupplierHealth]:
    result = await session.execute(select(SupplierHealth))
    return {row.supplier_id: row for row in result.scalars()}


def health_view(row: SupplierHealth) -> Health:
    failed, total = row.window_failed, row.window_total
    return Health(row.state, 1.0 - failed / total if total else 1.0, row.probe_at, row.reason)
