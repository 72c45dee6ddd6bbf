"""Real ``sms-worker run`` processes sharing one identity's quota through the status table
(SMS_WORKER_RATE_SHARING=dynamodb): every worker is configured with the whole quota, the
sandbox enforces it across all of them, and the sends stay under it with (almost) no
throttled call, nothing lost and nothing sent twice, as workers come and go.

Counts, not timings: utilisation is the bench's (bench/run.py, the scale-out rows)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import (
    Aws,
    Env,
    Sandbox,
    make_settings,
    request,
    spawn_worker,
    table_items,
    wait_for,
)
from test_processes import all_final, feed, stop

from worker.sandbox.bucket import most_in_window
from worker.status.model import KeyFamily

pytestmark = [pytest.mark.slow, pytest.mark.long]
IDENTITY = "pool-shared"
QUOTA = 10.0  # messages per second, the whole fleet's
BURST_S = 1.0  # what the sandbox tolerates: a bucket of BURST_S * QUOTA


async def check_sends(sandbox: Sandbox, n: int) -> dict[str, Any]:
    stats = await sandbox.stats()
    sends = await sandbox.sends()
    by_destination: dict[str, int] = {}
    for send in sends:
        by_destination[send["destination"]] = by_destination.get(send["destination"], 0) + 1
    assert len(by_destination) == n  # none lost
    assert most_in_window([s["received_at"] for s in sends], 1.0) <= QUOTA + BURST_S * QUOTA
    return {"stats": stats, "by_destination": by_destination}


async def share_item(aws: Aws, env: Env) -> dict[str, Any]:
    key = {"RequestId": {"S": KeyFamily.RATE_SHARE.value + IDENTITY}}
    item: dict[str, Any] = (
        await aws.ddb.get_item(TableName=env.table, Key=key, ConsistentRead=True)
    ).get("Item", {})
    return item


def settings_for(env: Env) -> Any:
    # A few messages held per worker: a held message waits for its token, and one handed
    # back at shutdown counts a receive toward the dead-letter queue.
    return make_settings(
        env, rate_limits=f"default={QUOTA}", rate_sharing="dynamodb", max_in_flight=8
    )


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
async def test_workers_share_the_quota_without_throttling(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path, workers: int
) -> None:
    await sandbox.configure(mps={IDENTITY: QUOTA}, burst_s=BURST_S, latency_ms=20)
    n = 60
    settings = settings_for(env)
    procs = [spawn_worker(settings, tmp_path / f"w{i}.log") for i in range(workers)]
    try:
        await feed(aws, env, [request(i, OriginationIdentity=IDENTITY) for i in range(n)])
        items = await wait_for(lambda: all_final(aws, env, n), timeout_s=90, interval_s=0.5)
        leases = (await share_item(aws, env))["Leases"]["M"]
    finally:
        codes = [stop(p) for p in procs]
    assert codes == [0] * workers
    assert {i["Status"] for i in items.values()} == {"SENT"}
    sent = await check_sends(sandbox, n)
    assert set(sent["by_destination"].values()) == {1}  # none sent twice
    throttled = sent["stats"]["throttled"]
    # (a throttle or two: a worker on its fallback share while moto is slow under load; the
    # bench's rows ask <= 0.5% of longer runs)
    assert throttled <= max(2, 0.03 * n), sent["stats"]
    assert 1 <= len(leases) <= workers  # each worker that sent held a lease
    after = (await share_item(aws, env))["Leases"]["M"]
    assert after == {}  # a SIGTERM gives the share back at once
    for i in range(workers):
        log = (tmp_path / f"w{i}.log").read_text()
        assert '"rate_sharing_started"' in log and '"rate_sharing_fallback"' not in log


async def test_workers_join_and_leave_mid_campaign(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.configure(mps={IDENTITY: QUOTA}, burst_s=BURST_S, latency_ms=20)
    n = 120
    settings = settings_for(env)
    procs: list[subprocess.Popen[bytes]] = []

    def start(count: int) -> None:
        for _ in range(count):
            procs.append(spawn_worker(settings, tmp_path / f"w{len(procs)}.log"))

    start(2)
    feeding = asyncio.create_task(
        feed(aws, env, [request(i, OriginationIdentity=IDENTITY) for i in range(n)])
    )
    try:
        await wait_for(lambda: sandbox.sent_at_least(30), timeout_s=60)
        start(2)  # two join
        await wait_for(lambda: sandbox.sent_at_least(60), timeout_s=60)
        assert stop(procs[0], signal.SIGKILL) == -signal.SIGKILL  # one dies: its lease expires
        assert stop(procs[1]) == 0  # one leaves: its lease is released at once
        await feeding
        try:
            items = await wait_for(lambda: all_final(aws, env, n), timeout_s=60, interval_s=0.5)
        except AssertionError:
            left = {k: v["Status"] for k, v in (await table_items(aws.ddb, env.table)).items()}
            raise AssertionError(f"not all final: {left}") from None
    finally:
        feeding.cancel()
        codes = [stop(p) for p in procs[2:]]
    assert codes == [0, 0]
    assert {i["Status"] for i in items.values()} == {"SENT"}
    sent = await check_sends(sandbox, n)
    assert all(c <= 2 for c in sent["by_destination"].values())  # a resend: the killed one's
    twice = sum(c > 1 for c in sent["by_destination"].values())
    assert twice <= settings.max_in_flight
    throttled = sent["stats"]["throttled"]
    assert throttled <= max(2, 0.02 * n), sent["stats"]
