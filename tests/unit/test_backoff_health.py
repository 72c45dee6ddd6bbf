"""The one backoff formula and the dependency-health tracker (pure code, a fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from worker.backoff import backoff_ceiling_s, compute_backoff_s
from worker.health import DYNAMODB, SMS, SQS, DependencyHealth


def test_backoff_grows_doubling_to_its_cap() -> None:
    assert [backoff_ceiling_s(a, 0.5, 5.0) for a in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert backoff_ceiling_s(0, 1.0, 9.0) == 1.0  # attempt numbers start at 1
    assert backoff_ceiling_s(10_000, 1.0, 30.0) == 30.0  # no overflow far out


def test_backoff_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert compute_backoff_s(3, 1.0, 10.0, rand=lambda: 0.0) == 0.0
    assert compute_backoff_s(3, 1.0, 10.0, rand=lambda: 0.5) == 2.0
    assert compute_backoff_s(3, 1.0, 10.0, jitter=False) == 4.0
    draws = [compute_backoff_s(4, 1.0, 10.0) for _ in range(500)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert max(draws) > 4.0 > min(draws)  # spread, not a constant


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_dependency_is_failing_from_its_first_failure_to_its_next_success() -> None:
    clock = Clock()
    health = DependencyHealth(clock=clock)
    assert not health.failing(DYNAMODB) and health.unready(5.0) == []
    health.failed(DYNAMODB, "EndpointConnectionError")
    clock.now += 3
    health.failed(DYNAMODB, "ReadTimeoutError")  # still the same outage
    assert health.failing(DYNAMODB) and health.failing_for_s(DYNAMODB) == 3.0
    assert health.unready(5.0) == []  # not yet past the threshold
    clock.now += 3
    assert health.unready(5.0) == ["dynamodb_failing:ReadTimeoutError"]
    assert not health.failing(SQS) and not health.failing(SMS)
    health.ok(DYNAMODB)
    assert not health.failing(DYNAMODB) and health.unready(5.0) == []
    assert health.errors_total(DYNAMODB) == 2


async def test_wait_recovered_returns_on_recovery_or_after_the_timeout() -> None:
    health = DependencyHealth()
    await asyncio.wait_for(health.wait_recovered(DYNAMODB, 30), 1)  # not failing: at once
    health.failed(DYNAMODB, "X")
    waiter = asyncio.create_task(health.wait_recovered(DYNAMODB, 30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    health.failed(SQS, "Y")  # another dependency's outage does not wake it for good
    health.ok(SQS)
    await asyncio.sleep(0.05)
    assert not waiter.done()
    health.ok(DYNAMODB)
    await asyncio.wait_for(waiter, 1)
    health.failed(DYNAMODB, "X")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await health.wait_recovered(DYNAMODB, 0.2)
    assert loop.time() - started == pytest.approx(0.2, abs=0.15)
