"""GroupCommit: rounds form under load, each caller gets its own result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tidings.errors import InvalidRequest, TidingsError
from tidings.groupcommit import GroupCommit


class Recorder:
    def __init__(self, fail_round: bool = False) -> None:
        self.rounds: list[list[int]] = []
        self.fail_round = fail_round

    async def write(self, items: Sequence[int]) -> list[int | BaseException]:
        self.rounds.append(list(items))
        await asyncio.sleep(0.01)  # a write takes time; others queue meanwhile
        if self.fail_round:
            raise ConnectionError("database went away")
        return [InvalidRequest(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_concurrent_callers_share_rounds_and_get_their_own_results() -> None:
    recorder = Recorder()
    rounds: GroupCommit[int, int] = GroupCommit(
        recorder.write, weight=lambda _: 1, max_weight=100, name="test"
    )
    rounds.start()
    try:
        results = await asyncio.gather(
            *(rounds.submit(i) for i in range(40)), return_exceptions=True
        )
    finally:
        await rounds.stop()
    assert [r for r in results if not isinstance(r, BaseException)] == [
        i * 10 for i in range(0, 40, 2)
    ]
    assert all(isinstance(results[i], InvalidRequest) for i in range(1, 40, 2))
    assert len(recorder.rounds) < 40  # batched: the first round alone, then the rest together
    assert sorted(i for r in recorder.rounds for i in r) == list(range(40))


async def test_round_weight_is_bounded() -> None:
    recorder = Recorder()
    rounds: GroupCommit[int, int] = GroupCommit(
        recorder.write, weight=lambda _: 10, max_weight=30, name="test"
    )
    rounds.start()
    try:
        await asyncio.gather(*(rounds.submit(i * 2) for i in range(20)))
    finally:
        await rounds.stop()
    assert max(len(r) for r in recorder.rounds) <= 3


async def test_a_failed_round_fails_each_of_its_callers() -> None:
    rounds: GroupCommit[int, int] = GroupCommit(
        Recorder(fail_round=True).write, weight=lambda _: 1, max_weight=100, name="test"
    )
    rounds.start()
    try:
        results = await asyncio.gather(
            *(rounds.submit(i) for i in range(5)), return_exceptions=True
        )
    finally:
        await rounds.stop()
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_stop_fails_what_is_still_waiting() -> None:
    rounds: GroupCommit[int, int] = GroupCommit(
        Recorder().write, weight=lambda _: 1, max_weight=1, name="test"
    )
    # Never started: submissions wait; stopping must not leave them hanging.
    waiting = asyncio.ensure_future(rounds.submit(2))
    await asyncio.sleep(0)
    await rounds.stop()
    with pytest.raises(TidingsError, match="shutting down"):
        await waiting
