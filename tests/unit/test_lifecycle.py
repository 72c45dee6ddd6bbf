"""The background-service lifecycle: loops, spawned work, start/close (pure asyncio)."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from worker.lifecycle import BackgroundService, Periodic


async def test_periodic_calls_plain_and_async_functions_every_interval() -> None:
    calls: list[str] = []

    async def tick_async() -> None:
        calls.append("async")

    plain = Periodic("plain", 0.01, lambda: calls.append("plain"))
    asynchronous = Periodic("async", 0.01, tick_async)
    plain.start()
    asynchronous.start()
    assert plain.running and calls == []  # the first call comes one interval after the start
    await asyncio.sleep(0.1)
    await plain.stop()
    await asynchronous.stop()
    assert calls.count("plain") >= 2 and calls.count("async") >= 2
    assert not plain.running
    seen = len(calls)
    await asyncio.sleep(0.03)
    assert len(calls) == seen  # stopped for good
    await plain.stop()  # idempotent


async def test_a_failing_call_is_logged_and_the_loop_goes_on() -> None:
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom")

    loop = Periodic("flaky", 0.01, flaky)
    with capture_logs() as logs:
        loop.start()
        while calls < 3:
            await asyncio.sleep(0.01)
        await loop.stop()
    failed = [e for e in logs if e["event"] == "periodic_failed"]
    assert len(failed) == 1 and failed[0]["loop"] == "flaky" and "boom" in failed[0]["error"]
    assert loop.failures == 1


async def test_a_periodic_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Periodic("never", 0, lambda: None)


class Service(BackgroundService):
    def __init__(self) -> None:
        super().__init__("svc")
        self.ticks = 0
        self.drained = 0
        self.every(0.01, self.tick)

    def tick(self) -> None:
        self.ticks += 1

    async def _drain(self) -> None:
        self.drained += 1
        await super()._drain()


async def test_start_runs_the_loops_and_close_stops_them_then_drains_once() -> None:
    service = Service()
    await asyncio.sleep(0.03)
    assert service.ticks == 0 and not service.running  # nothing runs before start()
    service.start()
    service.start()  # idempotent
    await asyncio.sleep(0.05)
    await service.close()
    ticks = service.ticks
    assert ticks >= 1 and service.drained == 1 and not service.running
    await service.close()  # idempotent: no second drain
    await asyncio.sleep(0.03)
    assert service.ticks == ticks and service.drained == 1
    with pytest.raises(RuntimeError, match="closed"):
        service.start()


async def test_async_with_is_start_and_close_and_a_late_loop_starts_at_once() -> None:
    late: list[int] = []
    async with Service() as service:
        assert service.running
        loop = service.every(0.01, lambda: late.append(1), name="late")
        assert loop.running
        await asyncio.sleep(0.05)
    assert late and not loop.running and service.drained == 1


async def test_spawned_work_is_kept_reaped_and_awaited_by_close() -> None:
    gate = asyncio.Event()
    done: list[str] = []

    async def work(name: str) -> None:
        await gate.wait()
        done.append(name)

    service = Service()
    service.start()
    service.spawn(work("a"))
    service.spawn(work("b"))
    assert service.in_flight == 2
    closing = asyncio.create_task(service.close())
    await asyncio.sleep(0.02)
    assert not closing.done()  # close waits for the work in flight
    gate.set()
    await closing
    assert sorted(done) == ["a", "b"] and service.in_flight == 0


async def test_a_spawned_task_that_fails_is_logged_not_lost() -> None:
    async def broken() -> None:
        raise RuntimeError("lost?")

    service = Service()
    with capture_logs() as logs:
        task = service.spawn(broken(), name="broken-work")
        await service.wait_spawned()
    assert task.done() and service.in_flight == 0
    [failed] = [e for e in logs if e["event"] == "background_task_failed"]
    assert failed["service"] == "svc" and failed["task"] == "broken-work"
    assert "lost?" in failed["error"]


async def test_what_drain_raises_is_raised_by_close_once() -> None:
    class Failing(BackgroundService):
        async def _drain(self) -> None:
            raise OSError("last flush failed")

    service = Failing("failing")
    service.start()
    with pytest.raises(OSError, match="last flush"):
        await service.close()
    await service.close()  # closed already: nothing again


async def test_a_loop_that_returns_when_it_is_due_sleeps_until_then_or_a_poke() -> None:
    calls: list[float] = []
    due_s = [0.01, 10.0, 10.0]

    def upkeep() -> float:
        calls.append(asyncio.get_running_loop().time())
        return due_s[min(len(calls), len(due_s)) - 1]

    loop = Periodic("upkeep", 60.0, upkeep, returns_due_s=True)
    loop.poke()  # work before the start: the first call comes at once, not 60 s later
    loop.start()
    while len(calls) < 2:  # the first call asked for the next 0.01 s later
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    assert len(calls) == 2  # the second asked for 10 s: no tick meanwhile
    loop.poke()
    await asyncio.sleep(0.01)
    assert len(calls) == 3  # a poke calls it now
    await loop.stop()


async def test_a_due_time_is_bounded_by_the_interval_and_never_a_busy_loop() -> None:
    calls = 0

    def upkeep() -> float:
        nonlocal calls
        calls += 1
        return -5.0 if calls == 1 else 1e9  # overdue, then "never"

    loop = Periodic("upkeep", 0.05, upkeep, returns_due_s=True)
    loop.start()
    async with asyncio.timeout(5):  # "never" is capped at the interval: a third call comes
        while calls < 3:
            await asyncio.sleep(0.01)
    await loop.stop()


async def test_a_plain_loop_ignores_what_its_function_returns() -> None:
    calls = 0

    def extend() -> int:
        nonlocal calls
        calls += 1
        return 0  # how many it extended: no due time

    loop = Periodic("extender", 0.05, extend)
    loop.start()
    await asyncio.sleep(0.12)
    await loop.stop()
    assert 1 <= calls <= 3  # every 0.05 s (a due time of 0 s would have made it hundreds)
