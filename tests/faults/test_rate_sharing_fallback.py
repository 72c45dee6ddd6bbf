"""The dynamodb rate limiter (worker.sending.shared) in-process against moto, through the
fault proxy: two limiters on one table split a key's quota between them, a throttle seen
by one lowers the other's share, and while the table does not answer each falls back to the
quota divided by the workers it last saw, saying so in /readyz and /metrics; and a worker
that gave its share up while idle asks for it again as soon as a send waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from prometheus_client import generate_latest
from support import Aws, Env, make_settings, wait_for

from worker.devstack.faultproxy import FaultProxy
from worker.health import DependencyHealth
from worker.metrics import Metrics
from worker.observe.exposition import build_registry
from worker.observe.http import Observed
from worker.sending import sharing as sh
from worker.sending.cooldown import Cooldown
from worker.sending.share_table import ShareTable
from worker.sending.shared import SharedLimiter

KEY = "pool-fallback"
QUOTA = 100.0  # high enough that the renewals come every second (sharing.renew_s)
FAST = AioConfig(retries={"total_max_attempts": 1}, read_timeout=1, connect_timeout=1)


async def keep_busy(limiter: SharedLimiter, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await limiter.reserve(KEY)


@pytest.fixture
async def proxied(servers: dict[str, str]) -> AsyncIterator[tuple[FaultProxy, object]]:
    async with (
        FaultProxy(servers["moto"], service="dynamodb") as proxy,
        get_session().create_client("dynamodb", endpoint_url=proxy.url, config=FAST) as ddb,
    ):
        yield proxy, ddb


async def test_two_limiters_split_the_quota_and_fall_back_while_the_table_is_away(
    proxied: tuple[FaultProxy, object], env: Env
) -> None:
    proxy, ddb = proxied
    settings = make_settings(env, rate_limits=f"default={QUOTA}")
    stop = asyncio.Event()  # never set: the tasks are cancelled
    async with AsyncExitStack() as stack:
        limiters = []
        for name in ("a", "b"):
            limiter = SharedLimiter(settings, ShareTable(ddb, env.table), worker=name)
            await stack.enter_async_context(limiter)
            limiters.append(limiter)
        a, b = limiters
        busy = [asyncio.create_task(keep_busy(x, stop)) for x in limiters]

        async def cancel_busy() -> None:
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)

        stack.push_async_callback(cancel_busy)  # before the limiters close

        def shares() -> list[float]:
            return [x.sharing().keys[0].share_mps for x in limiters if x.sharing().keys]

        async def split() -> bool:
            got = shares()
            return len(got) == 2 and all(abs(s - QUOTA / 2) < 1 for s in got)

        await wait_for(split, timeout_s=20, interval_s=0.2)
        assert sum(shares()) <= QUOTA
        assert all(x.sharing().keys[0].live_workers == 2 for x in limiters)

        # a throttle seen by a lowers the shared rate: b's share follows at its renewal
        a.on_throttle(KEY)

        async def b_slowed() -> bool:
            return b.sharing().keys[0].share_mps < QUOTA / 2 * 0.8

        await wait_for(b_slowed, timeout_s=10, interval_s=0.2)
        assert b.sharing().keys[0].shared_rate_mps < QUOTA * 0.8

        # the table stops answering: each falls back to quota / 2 (the workers last seen)
        proxy.inject("reset", 6)
        health = DependencyHealth()
        ready, stopping = asyncio.Event(), asyncio.Event()
        ready.set()
        observed = Observed(Metrics(), a, Cooldown(1.0), ready, stopping, health, 0.5)

        async def fell_back() -> bool:
            return all(x.sharing().fallback_keys(0.5) == 1 for x in limiters)

        await wait_for(fell_back, timeout_s=10, interval_s=0.2)
        assert shares() == [QUOTA / 2, QUOTA / 2]  # never above the quota together
        assert "rate_sharing_fallback:keys=1" in observed.unready_reasons()
        text = generate_latest(build_registry(observed)).decode()
        assert "sms_worker_rate_sharing_fallback{" in text and "} 1.0" in text
        assert "sms_worker_rate_quota_mps{identity=" in text

        # it answers again: back to leases, ready again
        async def recovered() -> bool:
            return all(x.sharing().fallback_keys() == 0 for x in limiters)

        await wait_for(recovered, timeout_s=20, interval_s=0.2)
        assert observed.unready_reasons() == []
        assert a.sharing().writes_total > 0


async def test_an_expired_lease_is_reclaimed_once_and_a_stale_grant_is_refused(
    aws: Aws, env: Env
) -> None:
    """The conditions of a renewal on the wire: the first worker to see a lease expired
    removes it and its grant; another one, from the same (now stale) view, is refused."""
    table = ShareTable(aws.ddb, env.table)
    item = await table.ensure(KEY)
    dead = sh.plan(item, "dead", QUOTA, QUOTA, now_ms=1_000)
    item = await table.write(KEY, dead)
    assert item.granted_mmps == sh.to_milli(QUOTA)
    later = dead.lease.until_ms + 1  # "dead" never renewed
    first = sh.plan(item, "a", QUOTA, QUOTA, later)
    assert set(first.reclaim) == {"dead"} and first.grant_mps == QUOTA
    after = await table.write(KEY, first)
    assert set(after.leases) == {"a"} and after.granted_mmps == sh.to_milli(QUOTA)
    second = sh.plan(item, "b", QUOTA, QUOTA, later)  # the same view, before a's write
    with pytest.raises(sh.Refused):
        await table.write(KEY, second)
    assert (await table.read(KEY)).granted_mmps == sh.to_milli(QUOTA)  # never above it
    await table.release(KEY, "a", first.lease)
    assert (await table.read(KEY)).granted_mmps == 0


async def test_a_worker_that_gave_its_share_up_while_idle_asks_again_at_once(
    aws: Aws, env: Env
) -> None:
    """Shares follow demand, so an idle worker's renewal asks for nothing and it holds no
    quota; a message that then comes in does not wait for the next renewal (a period: 10 s
    at 1 MPS) but for the renewal it asks for at once (the renewals' 1-s floor)."""
    settings = make_settings(env, rate_limits="default=1")
    period_s = sh.renew_s(1, 1.0, settings.rate_sharing_renew_max_s)
    assert period_s >= 8  # what the message would otherwise wait
    async with SharedLimiter(settings, ShareTable(aws.ddb, env.table), worker="a") as limiter:
        await limiter.reserve(KEY)  # the first renewal grants the quota

        async def gave_it_up() -> bool:
            keys = limiter.sharing().keys
            return bool(keys) and keys[0].share_mps == 0

        await wait_for(gave_it_up, timeout_s=3 * period_s, interval_s=0.2)
        # what the handler and the receive gate see: a send would wait for the renewal it
        # asks for, not the next one due (which would defer it, and shut the gate)
        assert limiter.next_wait_s(KEY) <= sh.RENEW_MIN_S
        room = limiter.room(5.0)
        assert room is not None and room.free > 0
        writes = limiter.sharing().writes_total
        waited_s = await limiter.reserve(KEY)
        assert waited_s < period_s / 2, waited_s
        assert limiter.sharing().keys[0].share_mps == 1.0
        assert limiter.sharing().writes_total == writes + 1  # one renewal, asked for
