"""Every benchmark module imports: a name moved between bench modules once broke `make
bench` (`python -m bench.run`) with no test noticing, since the benchmarks run by hand."""

from __future__ import annotations

import importlib
import pkgutil

import bench
import pytest

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(bench.__path__, prefix="bench.")
    if not info.name.endswith("__main__")
)


def test_there_are_benchmarks() -> None:
    assert "bench.run" in MODULES and "bench.e2e.run" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_a_bench_module_imports(name: str) -> None:
    importlib.import_module(name)
