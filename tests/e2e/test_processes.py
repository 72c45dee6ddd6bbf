"""Real ``sms-worker run`` processes: a mixed campaign, two workers racing on duplicates,
SIGTERM and SIGKILL mid-run. Queues are fed progressively so moto's SQS stays shallow."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    queue_depth,
    request,
    spawn_worker,
    table_items,
    wait_for,
)

from worker.status.counters import read_campaign
from worker.status.model import Claim, RecordFields
from worker.status.store import StatusStore

pytestmark = pytest.mark.slow
FINAL = {"SENT", "FAILED", "EXPIRED"}


async def feed(
    aws: Aws, env: Env, bodies: list[Any], *, chunk: int = 30, max_depth: int = 60
) -> None:
    """Enqueue ``bodies`` a chunk at a time, keeping the queue shallow."""
    for start in range(0, len(bodies), chunk):
        while await queue_depth(aws.sqs, env.queue_url) > max_depth:
            await asyncio.sleep(0.2)
        await enqueue(aws.sqs, env.queue_url, bodies[start : start + chunk])


async def all_final(aws: Aws, env: Env, expected: int) -> dict[str, dict[str, Any]] | None:
    items = await table_items(aws.ddb, env.table)
    if len(items) < expected or any(i["Status"] not in FINAL for i in items.values()):
        return None
    if await queue_depth(aws.sqs, env.queue_url):
        return None
    return items


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout_s)


async def test_mixed_campaign_every_request_final_none_lost_none_twice(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.configure(
        opted_out=[request(i)["DestinationPhoneNumber"] for i in (5, 6)],
        latency_ms=20,
        latency_jitter_ms=10,
    )
    valid = [request(i, CampaignId="mix") for i in range(300)]
    expired = [
        request(i, NotAfter="2020-01-01T00:00:00Z", CampaignId="mix") for i in range(300, 310)
    ]
    invalid: list[Any] = [
        "{not json",
        "null",
        "[]",
        "42",
        request(400, Extra=1),
        request(401, DestinationPhoneNumber="+1"),
        request(402, OriginationIdentity="has space"),
        request(403, MessageBody=""),
        request(404, MessageBody=None),
        request(405, MediaUrls=["s3://b/a.exe"]),
        request(406, TimeToLive=True),
        request(407, MaxPrice="abc"),
        request(408, Context={"k": " padded"}),
        request(409, ConfigurationSetName="a b"),
        request(410, ProtectConfigurationId=""),
        request(411, MessageFeedbackEnabled="no"),
        request(412, CampaignId="x" * 129),
        request(413, NotAfter="tomorrow"),
        request(414, RequestId=""),
    ]
    duplicates = [request(i, CampaignId="mix") for i in range(0, 300, 10)]
    bodies = valid + expired + invalid + duplicates
    worker = spawn_worker(make_settings(env, max_in_flight=32), tmp_path / "worker.log")
    try:
        await feed(aws, env, bodies)
        items = await wait_for(
            lambda: all_final(aws, env, 300 + 10 + len(invalid)), timeout_s=180, interval_s=1
        )
    finally:
        assert stop(worker) == 0
    status = Counter(i["Status"] for i in items.values())
    assert status == {"SENT": 298, "FAILED": 2 + len(invalid), "EXPIRED": 10}
    opted = [items[f"req-{i}"] for i in (5, 6)]
    assert all(i["ErrorReason"] == "DESTINATION_PHONE_NUMBER_OPTED_OUT" for i in opted)
    assert sum(1 for i in items.values() if i.get("ErrorCode") == "INVALID_REQUEST") == len(invalid)
    sends = await sandbox.sends_by_destination()
    assert len(sends) == 298 and set(sends.values()) == {1}  # none lost, none twice
    # The campaign's counters (flushed on shutdown at the latest) match, copies not counted.
    progress = await read_campaign(aws.ddb, env.table, "mix")
    assert progress.counts == {"SENT": 298, "FAILED": 2, "EXPIRED": 10}
    assert progress.errors == {"ConflictException": 2}


async def test_concurrent_conditional_claims_are_atomic(aws: Aws, env: Env) -> None:
    """The claim is only as strong as the server's conditional write: check ours is atomic."""
    store = StatusStore(aws.ddb, env.table, lease_s=30, ttl_days=1)
    for n in range(5):
        info = RecordFields(f"race-{n}", "m", 1)
        results = await asyncio.gather(*(store.claim(info) for _ in range(25)))
        assert sum(isinstance(r, Claim) for r in results) == 1


async def test_two_workers_racing_on_copies_send_each_request_once(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.configure(latency_ms=30)
    n = 60
    # Every request twice, copies side by side, so both workers get copies at the same time.
    bodies = [request(i) for i in range(n) for _ in range(2)]
    settings = make_settings(env, max_in_flight=16)
    workers = [spawn_worker(settings, tmp_path / f"worker-{k}.log") for k in range(2)]
    try:
        await feed(aws, env, bodies, chunk=40, max_depth=40)
        items = await wait_for(lambda: all_final(aws, env, n), timeout_s=120, interval_s=1)
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]
    assert {i["Status"] for i in items.values()} == {"SENT"}
    sends = await sandbox.sends_by_destination()
    assert len(sends) == n and set(sends.values()) == {1}
    logs = "".join((tmp_path / f"worker-{k}.log").read_text() for k in range(2))
    skipped = logs.count('"duplicate_skipped"') + logs.count('"lease_busy"')
    assert skipped >= n  # every copy was recognised, by one worker or the other
    assert all(p.read_text().count('"sent"') > 0 for p in tmp_path.glob("worker-*.log"))


async def test_sigterm_finishes_in_flight_and_restart_completes(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.configure(latency_ms=300, latency_jitter_ms=100)
    n = 80
    settings = make_settings(env, max_in_flight=10, shutdown_grace_s=8)
    worker = spawn_worker(settings, tmp_path / "first.log")
    await feed(aws, env, [request(i) for i in range(n)])
    await wait_for(lambda: sandbox.sent_at_least(15), timeout_s=60)
    started = time.monotonic()
    code = stop(worker, signal.SIGTERM, timeout_s=30)
    took = time.monotonic() - started
    assert code == 0
    assert took < settings.shutdown_grace_s + settings.shutdown_hard_s
    log = (tmp_path / "first.log").read_text()
    assert '"shutdown_started"' in log and '"shutdown_finished"' in log
    items = await table_items(aws.ddb, env.table)
    assert not [i for i in items.values() if i["Status"] == "SENDING"]  # nothing left mid-send
    restarted = spawn_worker(settings, tmp_path / "second.log")
    try:
        items = await wait_for(lambda: all_final(aws, env, n), timeout_s=120, interval_s=1)
    finally:
        assert stop(restarted) == 0
    assert {i["Status"] for i in items.values()} == {"SENT"}
    sends = await sandbox.sends_by_destination()
    assert len(sends) == n and set(sends.values()) == {1}


async def test_sigkill_loses_nothing_and_resends_only_what_was_mid_send(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.configure(latency_ms=300, latency_jitter_ms=100)
    n = 80
    settings = make_settings(env, max_in_flight=10)
    worker = spawn_worker(settings, tmp_path / "first.log")
    await feed(aws, env, [request(i) for i in range(n)])
    await wait_for(lambda: sandbox.sent_at_least(15), timeout_s=60)
    assert stop(worker, signal.SIGKILL) == -signal.SIGKILL
    at_kill = await table_items(aws.ddb, env.table)
    mid_send = {i["DestinationPhoneNumber"] for i in at_kill.values() if i["Status"] == "SENDING"}
    restarted = spawn_worker(settings, tmp_path / "second.log")
    try:
        items = await wait_for(lambda: all_final(aws, env, n), timeout_s=120, interval_s=1)
    finally:
        assert stop(restarted) == 0
    assert {i["Status"] for i in items.values()} == {"SENT"}  # nothing lost
    sends = await sandbox.sends_by_destination()
    assert len(sends) == n
    twice = {d for d, c in sends.items() if c > 1}
    assert twice <= mid_send  # a resend only where the kill fell inside the crash window
    assert all(c <= 2 for c in sends.values())


async def test_second_signal_exits_at_once_and_loses_nothing(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.configure(latency_ms=4000)
    n = 12
    settings = make_settings(
        env,
        max_in_flight=6,
        send_timeout_s=6,
        lease_s=12,
        visibility_timeout_s=14,
        shutdown_grace_s=20,
    )
    worker = spawn_worker(settings, tmp_path / "first.log")
    await feed(aws, env, [request(i) for i in range(n)])
    await wait_for(lambda: _calls_at_least(sandbox, 6), timeout_s=30)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    code = stop(worker, signal.SIGTERM, timeout_s=30)
    took = time.monotonic() - started
    assert code == 0
    assert took < 3.5  # well inside the sandbox's 4 s answer and the 20 s grace period
    assert '"shutdown_forced"' in (tmp_path / "first.log").read_text()
    at_exit = await table_items(aws.ddb, env.table)
    mid_send = {i["DestinationPhoneNumber"] for i in at_exit.values() if i["Status"] == "SENDING"}
    await sandbox.configure(latency_ms=0)
    restarted = spawn_worker(settings, tmp_path / "second.log")
    try:
        items = await wait_for(lambda: all_final(aws, env, n), timeout_s=90, interval_s=1)
    finally:
        assert stop(restarted) == 0
    assert {i["Status"] for i in items.values()} == {"SENT"}
    sends = await sandbox.sends_by_destination()
    assert len(sends) == n
    assert {d for d, c in sends.items() if c > 1} <= mid_send


async def _calls_at_least(sandbox: Sandbox, n: int) -> bool:
    return (await sandbox.stats())["in_flight"] >= n


async def test_three_workers_share_one_quota_without_loss_or_duplicates(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Each worker is configured with the whole quota and, with rate sharing off, throttling
    teaches them to share it (sharing on: tests/e2e/test_rate_sharing.py)."""
    quota = 6.0
    await sandbox.configure(default_mps=quota, burst_s=0.5, latency_ms=20)
    n = 72
    settings = make_settings(
        env,
        rate_limits=f"default={quota}",
        retry_attempts=8,
        retry_budget_s=20,
        lease_s=30,
        visibility_timeout_s=60,
        max_token_wait_s=20,
        rate_sharing="none",
    )
    workers = [spawn_worker(settings, tmp_path / f"w{k}.log") for k in range(3)]
    try:
        await feed(aws, env, [request(i) for i in range(n)], chunk=20, max_depth=30)
        items = await wait_for(lambda: all_final(aws, env, n), timeout_s=150, interval_s=1)
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0, 0]
    assert {i["Status"] for i in items.values()} == {"SENT"}
    sends = await sandbox.sends_by_destination()
    assert len(sends) == n and set(sends.values()) == {1}
    stats = await sandbox.stats()
    assert stats["throttled"] > 0  # they did contend...
    logs = [(tmp_path / f"w{k}.log").read_text() for k in range(3)]
    assert all('"sent"' in log for log in logs)  # ...and all three sent
