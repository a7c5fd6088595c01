"""The garbage-collector tuning of the long-running commands."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tidings import runtime
from tidings.runtime import GEN0_THRESHOLD, tune_gc_for_service


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    callbacks = list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


@pytest.mark.usefixtures("restored_gc")
def test_heap_is_frozen_and_young_collections_are_rarer() -> None:
    _, gen1, gen2 = gc.get_threshold()
    tune_gc_for_service()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
    assert gc.isenabled()  # cycles are still collected


@pytest.mark.usefixtures("restored_gc")
def test_survivors_of_a_full_collection_are_frozen_and_thawed_now_and_then() -> None:
    tune_gc_for_service()
    tune_gc_for_service()  # idempotent: one callback
    assert gc.callbacks.count(runtime._refreeze_after_full_collections) == 1
    late = [[object()] for _ in range(1000)]  # loaded after start-up: not frozen yet
    before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() >= before + len(late)
    runtime._full_collections = runtime.THAW_EVERY - 1
    gc.collect()  # the THAW_EVERY-th: everything thawed for the next one
    assert gc.get_freeze_count() == 0
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1  # a cycle among thawed objects is collected
