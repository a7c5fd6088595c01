"""The request rate limiter's token buckets, on a clock the test moves."""

from __future__ import annotations

import pytest

from tidings.api.limits import RateLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_admits_a_burst_then_refuses_with_the_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst_seconds=0.5, now=clock)  # 5 at once, then 10 a second
    assert [limiter.acquire("a") for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("a") == pytest.approx(0.1)
    clock.now += 0.05  # half a token
    assert limiter.acquire("a") == pytest.approx(0.05)
    clock.now += 0.05
    assert limiter.acquire("a") == 0.0


def test_the_bucket_refills_at_the_rate_and_never_above_its_size() -> None:
    clock = Clock()
    limiter = RateLimiter(2, burst_seconds=1, now=clock)
    assert limiter.acquire("a") == limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    clock.now += 3600  # an hour idle refills two tokens, not 7200
    assert [limiter.acquire("a") == 0.0 for _ in range(3)] == [True, True, False]


def test_callers_have_buckets_of_their_own_and_overrides() -> None:
    clock = Clock()
    limiter = RateLimiter(1, burst_seconds=1, overrides={"vip": 100, "free": 0}, now=clock)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0
    assert all(limiter.acquire("vip") == 0.0 for _ in range(100))
    assert limiter.acquire("vip") > 0
    assert all(limiter.acquire("free") == 0.0 for _ in range(10_000))


def test_a_rate_of_zero_is_no_limit_and_keeps_no_state() -> None:
    limiter = RateLimiter(0, now=Clock())
    assert all(limiter.acquire(n) == 0.0 for n in range(1000))
    assert not limiter._buckets


def test_a_slow_rate_still_admits_one_request() -> None:
    clock = Clock()
    limiter = RateLimiter(0.1, burst_seconds=1, now=clock)  # rate × burst < 1
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(10.0)


def test_a_clock_stepping_back_takes_no_tokens_away() -> None:
    clock = Clock()
    limiter = RateLimiter(1, burst_seconds=2, now=clock)
    assert limiter.acquire("a") == 0.0
    clock.now -= 100
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_idle_buckets_are_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(1, burst_seconds=1, now=clock)
    for caller in range(100):
        limiter.acquire(caller)
    clock.now += 120
    limiter.acquire("fresh")
    assert set(limiter._buckets) == {"fresh"}


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.001, "1"), (0.5, "1"), (1.0, "1"), (1.01, "2"), (59.2, "60")]
)
def test_retry_after_is_whole_seconds_rounded_up_never_zero(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header
