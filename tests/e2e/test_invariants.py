"""The fault-tolerance invariants, each against the real servers (moto, the sandbox) over HTTP.

A dependency that is down is a port nothing listens on (connection refused, on the wire);
the recovery tests with a fault that starts and ends are in tests/faults (the fault proxy).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    request,
    running_worker,
    table_items,
    wait_for,
)

from worker.devstack.faultproxy import FaultProxy
from worker.devstack.stack import free_port
from worker.metrics import Metrics
from worker.sending.errors import ErrorKind
from worker.sending.ratelimit import RateLimiter
from worker.sending.sender import Sender
from worker.status.model import Claim, Outcome, RecordFields, Status
from worker.status.store import StatusStore


async def test_dynamodb_down_strands_nothing_and_pauses_receiving(
    aws: Aws,
    env: Env,
    sandbox: Sandbox,
    servers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every claim fails: each message is handed back (none held by a worker that is not
    working on it), the pollers pause, /readyz says why, and no send is made. (DynamoDB goes
    down once the worker has started: down at start-up, the worker would not start, exit 69.)"""
    async with FaultProxy(servers["moto"], service="dynamodb") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        await _dynamodb_down(aws, env, sandbox, proxy)


async def _dynamodb_down(aws: Aws, env: Env, sandbox: Sandbox, proxy: FaultProxy) -> None:
    port = free_port()
    settings = make_settings(
        env,
        metrics_port=port,
        metrics_host="127.0.0.1",
        dependency_unready_s=1,
        max_receive_count=50,
    )
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as http, running_worker(settings) as worker:
            proxy.inject("reset", 120)
            await enqueue(aws.sqs, env.queue_url, [request(n) for n in range(4)])

            async def unready() -> Any:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    body = await r.json()
                    failing = any(x.startswith("dynamodb_failing:") for x in body["reasons"])
                    return r.status == 503 and failing and body

            # (the rate limiter's fallback may say so first: rate_sharing_fallback)
            await wait_for(unready, timeout_s=30)
            assert worker.metrics.store_errors >= 1
            # The extender only ever tracks messages that a live task holds.
            for _ in range(20):
                assert worker.messages_tracked <= worker.tasks_running
                await asyncio.sleep(0.1)
    events = {e["event"] for e in logs}
    assert "receiving_paused" in events and "store_unavailable" in events
    assert "unsettled_message" not in events
    assert await sandbox.sends() == []
    # Every message was handed back: all four can be received again within the visibility
    # timeout (none is left invisible behind a worker that stopped working on it).
    seen: set[str] = set()
    deadline = time.monotonic() + settings.visibility_timeout_s + 5
    while len(seen) < 4 and time.monotonic() < deadline:
        got = await aws.sqs.receive_message(
            QueueUrl=env.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30
        )
        seen |= {m["MessageId"] for m in got.get("Messages", [])}
    assert len(seen) == 4


async def test_an_sms_endpoint_refusing_connections_pauses_receiving(
    aws: Aws, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dependency that fails for every message (the SMS API refusing connections) pauses
    the pollers, like the account-wide cool-down: the messages' receives are not burnt toward
    the dead-letter queue while it lasts, and none reaches it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2", f"http://127.0.0.1:{free_port()}")
    settings = make_settings(env, max_receive_count=3, dependency_unready_s=1)
    await enqueue(aws.sqs, env.queue_url, [request(n) for n in range(6)])
    with capture_logs() as logs:
        async with running_worker(settings) as worker:
            await wait_for(lambda: _logged(logs, "receiving_paused"), timeout_s=30)
            paused_at = worker.metrics.received
            await asyncio.sleep(12)  # several redelivery delays: receiving stays paused
            received_while_paused = worker.metrics.received - paused_at
            # While it lasts, no request is given up (a last receive is kept in its task).
            items = await table_items(aws.ddb, env.table)
            assert not any(i.get("ErrorCode") == "RETRIES_EXHAUSTED" for i in items.values())
            dead = await aws.sqs.receive_message(
                QueueUrl=env.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            assert dead.get("Messages", []) == []
    # One probe message every 5 s at most, not every message each redelivery delay.
    assert received_while_paused <= 4, received_while_paused
    assert all(i["Status"] != "SENT" for i in items.values())


async def _logged(logs: list[dict[str, Any]], event: str) -> bool:
    return any(e["event"] == event for e in logs)


async def test_a_retried_final_write_that_finds_its_own_outcome_succeeds(
    aws: Aws, env: Env
) -> None:
    store = StatusStore(aws.ddb, env.table, lease_s=30, ttl_days=1)
    info = RecordFields("own-1", "m-1", 1)
    claim = await store.claim(info)
    assert isinstance(claim, Claim)
    outcome = Outcome(Status.FAILED, error_code="ValidationException", error_reason="X")
    assert await store.write_outcome(claim, info, outcome, 1) is None
    # The same write again (as when its answer was lost and the client retried): ours.
    assert await store.write_outcome(claim, info, outcome, 1) is None
    # Another claim's token is refused and sees the record as it stands.
    other = Claim("own-1", "not-our-token", 1, claim.lease_until_ms)
    lost = await store.write_outcome(other, info, outcome, 1)
    assert lost is not None and lost.status == Status.FAILED


async def test_no_retry_starts_that_could_outlast_the_lease(
    servers: dict[str, str], sandbox: Sandbox, env: Env
) -> None:
    """A retry that would wait for a token past the claim's lease is not made."""
    from aiobotocore.session import get_session

    await sandbox.configure(fault_rate=1.0)  # every call a transient 5xx
    settings = make_settings(
        env, rate_limits="default=0.5", rate_burst_s=0.1, retry_attempts=10, retry_budget_s=4
    )
    limiter = RateLimiter(settings.rate_limits, settings.rate_burst_s)
    metrics = Metrics()
    async with get_session().create_client("pinpoint-sms-voice-v2") as sms:
        sender = Sender(sms, limiter, settings, metrics)
        call_s = settings.send_timeout_s + settings.connect_timeout_s + 1
        await limiter.bucket("+18005550100").acquire()
        deadline = time.monotonic() + call_s + 1.0  # room for the first call and 1 s more
        params = request(1, RequestId=None)
        result = await sender.send(params, "+18005550100", first_token_held=True, deadline=deadline)
    # The next token was 2 s away (0.5 MPS): waiting for it would have run past the lease.
    assert result.calls == 1 and result.error is not None
    assert result.error.kind is ErrorKind.TRANSIENT
    assert time.monotonic() <= deadline


async def test_a_shutdown_on_the_last_receive_records_a_final_status_first(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    """Handed back on its last allowed receive, a message would reach the dead-letter queue
    with no final status: the worker records FAILED/RETRIES_EXHAUSTED before letting go."""
    # One token every 100 s: the second request waits for its token when the stop comes.
    settings = make_settings(
        env, rate_limits="default=0.01", max_token_wait_s=5, max_receive_count=1
    )
    await enqueue(aws.sqs, env.queue_url, [request(1), request(2)])
    async with running_worker(settings) as worker:
        await wait_for(lambda: sandbox.sent_at_least(1), timeout_s=30)
        await wait_for(lambda: _async(worker.metrics.received >= 2), timeout_s=30)
        await asyncio.sleep(0.5)
    items = await table_items(aws.ddb, env.table)
    statuses = sorted(
        (i["Status"], i.get("ErrorCode"), i.get("ErrorReason")) for i in items.values()
    )
    assert statuses == [("FAILED", "RETRIES_EXHAUSTED", "SHUTDOWN"), ("SENT", None, None)]


async def test_a_cool_down_on_the_last_receive_keeps_the_message_and_sends_it_after(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    """A cool-down hand-back on the last allowed receive is waited out in the task."""
    await sandbox.configure(account_error="AccessDeniedException")
    settings = make_settings(env, cooldown_s=2, max_receive_count=1, max_in_flight=1)
    await enqueue(aws.sqs, env.queue_url, [request(1)])
    async with running_worker(settings) as worker:
        items = await wait_for(lambda: _statuses(aws, env, {"req-1"}), timeout_s=30)
        assert items["req-1"]["ErrorCode"] == "RETRIES_EXHAUSTED"  # its own last receive
        await sandbox.configure(account_error=None)
        await enqueue(aws.sqs, env.queue_url, [request(2)])  # arrives during the cool-down
        items = await wait_for(lambda: _statuses(aws, env, {"req-1", "req-2"}), timeout_s=30)
        assert worker.metrics.kept_last_receive >= 1
        # The queue allows more receives than the worker was told (3 against 1), so req-1
        # comes back instead of reaching the dead-letter queue: a replay, sent once.
        items = await wait_for(lambda: _all_sent(aws, env, {"req-1", "req-2"}), timeout_s=30)
    assert items["req-1"]["Replays"] == 1
    assert sorted(s["destination"] for s in await sandbox.sends()) == [
        "+12065550001",
        "+12065550002",
    ]


async def _all_sent(aws: Aws, env: Env, ids: set[str]) -> dict[str, Any] | None:
    items = await table_items(aws.ddb, env.table)
    return items if all(items.get(i, {}).get("Status") == "SENT" for i in ids) else None


async def _statuses(aws: Aws, env: Env, ids: set[str]) -> dict[str, Any] | None:
    items = await table_items(aws.ddb, env.table)
    final = {"SENT", "FAILED", "EXPIRED"}
    if ids <= items.keys() and all(items[i]["Status"] in final for i in ids):
        return items
    return None


async def _async(value: bool) -> bool:
    return value
