"""The garbage-collector tuning of the long-running commands."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tidings.runtime import GEN0_THRESHOLD, tune_gc_for_service


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_heap_is_frozen_and_young_collections_are_rarer() -> None:
    _, gen1, gen2 = gc.get_threshold()
    tune_gc_for_service()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
    assert gc.isenabled()  # cycles are still collected
