"""Reconnect pacing: OCPP-J's randomised doubling back-off (2.0.1 part 4 §5.3) and the token bucket."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.north.backoff import BackoffPolicy, TokenBucket


def test_backoff_doubles_up_to_repeat_times_then_stays() -> None:
    policy = BackoffPolicy(wait_minimum=3, random_range=10, repeat_times=3)
    assert [policy.delay(n, 0.0) for n in range(6)] == [3, 6, 12, 24, 24, 24]


def test_backoff_adds_a_new_random_part_to_every_attempt() -> None:
    policy = BackoffPolicy(wait_minimum=3, random_range=10, repeat_times=3)
    assert policy.delay(0, 0.5) == 8.0
    assert policy.delay(2, 0.99) == pytest.approx(12 + 9.9)


@given(st.integers(0, 50), st.floats(0, 1, exclude_max=True))
def test_backoff_is_bounded(attempt: int, fraction: float) -> None:
    policy = BackoffPolicy(wait_minimum=2, random_range=5, repeat_times=4)
    delay = policy.delay(attempt, fraction)
    assert 2 <= delay <= 2 * 16 + 5


def test_bucket_lets_a_burst_through_then_paces() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    waits = [bucket.reserve(0.0) for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2])


def test_bucket_refills_with_time() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    bucket.reserve(0.0)
    bucket.reserve(0.0)
    assert bucket.reserve(0.05) == pytest.approx(0.05)
    assert bucket.reserve(10.0) == 0.0  # refilled, capped at the burst


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, burst=1, now=0.0)


@given(
    st.floats(1, 1000),
    st.integers(1, 50),
    st.lists(st.tuples(st.floats(0, 5), st.floats(0, 1, exclude_max=True)), max_size=200),
)
def test_bucket_never_admits_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, steps: list[tuple[float, float]]
) -> None:
    """Whatever the arrival pattern, attempts by time t never exceed burst + rate·t."""
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    now = 0.0
    admitted_at: list[float] = []
    for gap, jitter in steps:
        now += gap
        admitted_at.append(now + bucket.reserve(now, jitter))
    admitted_at.sort()
    for count, t in enumerate(admitted_at, start=1):
        assert count <= burst + rate * t + 1e-6
