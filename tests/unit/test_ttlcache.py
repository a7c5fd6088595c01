"""TtlCache: values and domain errors remembered for ttl seconds, then looked up again."""

from __future__ import annotations

import asyncio

import pytest

from tidings.errors import AuthError
from tidings.ttlcache import TtlCache


async def test_values_and_errors_are_cached_until_they_expire() -> None:
    calls: list[str] = []

    async def load_ok() -> int:
        calls.append("ok")
        return 7

    async def load_bad() -> int:
        calls.append("bad")
        raise AuthError("wrong key")

    cache: TtlCache[str, int] = TtlCache(ttl=0.05)
    assert await cache.get("k", load_ok) == 7
    assert await cache.get("k", load_ok) == 7
    for _ in range(2):
        with pytest.raises(AuthError, match="wrong key"):
            await cache.get("x", load_bad)
    assert calls == ["ok", "bad"]
    await asyncio.sleep(0.06)
    assert await cache.get("k", load_ok) == 7
    assert calls == ["ok", "bad", "ok"]


async def test_ttl_zero_never_caches_and_the_size_is_bounded() -> None:
    count = 0

    async def load() -> int:
        nonlocal count
        count += 1
        return count

    off: TtlCache[str, int] = TtlCache(ttl=0)
    assert [await off.get("k", load) for _ in range(3)] == [1, 2, 3]
    small: TtlCache[int, int] = TtlCache(ttl=60, max_entries=3)
    for key in range(10):
        await small.get(key, load)
    assert len(small._entries) <= 3


async def test_concurrent_misses_share_one_load() -> None:
    """Every request in flight when an entry expires waits for one query, not one each."""
    calls = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    cache: TtlCache[str, int] = TtlCache(ttl=10)
    waiting = [asyncio.ensure_future(cache.get("k", load)) for _ in range(16)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [42] * 16
    assert calls == 1


async def test_a_failed_load_fails_its_waiters_and_is_not_cached() -> None:
    calls = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        raise ConnectionError("database away")

    cache: TtlCache[str, int] = TtlCache(ttl=10)
    waiting = [asyncio.ensure_future(cache.get("k", load)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    release.clear()
    retry = asyncio.ensure_future(cache.get("k", load))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(ConnectionError):
        await retry
    assert calls == 2  # tried again: a failure is not remembered
