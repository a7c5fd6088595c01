"""Process-level tuning shared by the long-running commands (serve, worker, smpp).

CPython's cyclic garbage collector runs a generation-0 pass every 700 net allocations and
walks every tracked object on the older passes. A gateway process allocates a few hundred
short-lived objects per message (PDUs, rows, futures), almost none of them in cycles, and
holds a large, long-lived heap from start-up (modules, SQLAlchemy mappers and compiled
statements, the numbering tables). Measured on the SMPP benchmark, collections were
several per cent of the process's CPU. So, once start-up is done:

- ``gc.freeze()`` moves everything alive into the permanent generation, which collections
  never walk again;
- the generation-0 threshold rises from 700 to 20,000 allocations (the older generations
  keep their ratios), so collections are rarer and each sweeps young objects only.

Cycles are still collected; memory held by garbage cycles is bounded by the threshold.

What a server loads lazily after start-up (statements compiled on first use, the numbering
plan's regions as numbers arrive, pooled connections, caches) is long-lived too, and each
full collection walked all of it again: a quarter of a second a time, 8 % of the CPU of the
DLR intake benchmark. So after each full collection, whatever survived it is frozen as
well, and every `THAW_EVERY`-th full collection starts from a thawed heap, so that cycles
among objects frozen earlier that have died since are still collected, a few minutes late.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 20_000
THAW_EVERY = 20


def tune_gc_for_service() -> None:
    """Apply the tuning above; call once, after imports, before serving."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    if _refreeze_after_full_collections not in gc.callbacks:
        gc.callbacks.append(_refreeze_after_full_collections)


_full_collections = 0


def _refreeze_after_full_collections(phase: str, info: dict[str, int]) -> None:
    global _full_collections
    if phase != "stop" or info.get("generation") != 2:
        return
    _full_collections += 1
    if _full_collections % THAW_EVERY == 0:
        gc.unfreeze()  # the next full collection walks everything once
    else:
        gc.freeze()
