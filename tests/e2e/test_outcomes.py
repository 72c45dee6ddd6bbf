"""Every row of the contract's outcome table (§3), asserted on the status table, on the
sandbox's record of sends, and on the queue; on both transports of the hot path (the lean
JSON client and aiobotocore), which must record the same things."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from structlog.testing import capture_logs
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    queue_depth,
    request,
    running_worker,
    table_items,
    wait_for,
)

from worker.status.codec import encode_value

FINAL = {"SENT", "FAILED", "EXPIRED"}


@pytest.fixture(autouse=True, params=["lean", "aiobotocore"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with the hot path on the JSON API client and on aiobotocore."""
    monkeypatch.setenv("SMS_WORKER_FAST_PATH", "true" if request.param == "lean" else "false")
    return str(request.param)


async def settled(aws: Aws, env: Env, expected: set[str], *, statuses: set[str] = FINAL) -> Any:
    """Wait until every expected RequestId has a status in ``statuses`` and the queue is empty."""

    async def check() -> dict[str, dict[str, Any]] | None:
        items = await table_items(aws.ddb, env.table)
        if not expected <= items.keys():
            return None
        if any(items[r]["Status"] not in statuses for r in expected):
            return None
        if await queue_depth(aws.sqs, env.queue_url):
            return None
        return items

    return await wait_for(check, timeout_s=60)


async def test_sent_and_dry_run(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    await enqueue(aws.sqs, env.queue_url, [request(1), request(2, DryRun=True)])
    async with running_worker(make_settings(env)):
        items = await settled(aws, env, {"req-1", "req-2"})
    sends = {s["destination"]: s for s in await sandbox.sends()}
    assert len(sends) == 2
    one, two = items["req-1"], items["req-2"]
    assert one["Status"] == two["Status"] == "SENT"
    assert one["MessageId"] == sends["+12065550001"]["message_id"]
    assert two["MessageId"] == sends["+12065550002"]["message_id"]
    assert sends["+12065550002"]["dry_run"] is True and two["DryRun"] is True
    assert "DryRun" not in one
    assert one["Attempts"] == 1 and one["ReceiveCount"] == 1
    assert one["SentAt"] and one["CreatedAt"] and one["UpdatedAt"]
    assert one["ExpiresAt"] > time.time() + 29 * 86400
    assert "LeaseUntil" not in one and "ErrorCode" not in one


async def test_duplicate_delivery_makes_no_call(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    expired = request(3, NotAfter="2020-01-01T00:00:00Z")
    await enqueue(
        aws.sqs, env.queue_url, [request(1), request(2, DestinationPhoneNumber="x"), expired]
    )
    async with running_worker(make_settings(env)):
        first = await settled(aws, env, {"req-1", "req-2", "req-3"})
        assert [first[r]["Status"] for r in ("req-1", "req-2", "req-3")] == [
            "SENT",
            "FAILED",
            "EXPIRED",
        ]
        # The same RequestIds again, now all valid and sendable: every one is a duplicate.
        with capture_logs() as logs:
            await enqueue(aws.sqs, env.queue_url, [request(1), request(2), request(3)])
            await wait_for(lambda: _count(logs, "duplicate_skipped", 3), timeout_s=20)
        second = await settled(aws, env, {"req-1", "req-2", "req-3"})
    assert second == first  # unchanged, attribute for attribute
    assert await sandbox.sends_by_destination() == {"+12065550001": 1}


async def _count(logs: list[dict[str, Any]], event: str, n: int) -> bool:
    return sum(1 for e in logs if e["event"] == event) >= n


async def test_live_lease_elsewhere_is_left_then_taken(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    lease_until = int(time.time() * 1000) + 4000
    await aws.ddb.put_item(
        TableName=env.table,
        Item={
            "RequestId": encode_value("req-1"),
            "Status": encode_value("SENDING"),
            "LeaseUntil": encode_value(lease_until),
            "LeaseToken": encode_value("other"),
            "Attempts": encode_value(1),
        },
    )
    await enqueue(aws.sqs, env.queue_url, [request(1)])
    with capture_logs() as logs:
        async with running_worker(make_settings(env)):
            await wait_for(lambda: _count(logs, "lease_busy", 1), timeout_s=10)
            item = (await table_items(aws.ddb, env.table))["req-1"]
            assert item["Status"] == "SENDING" and item["LeaseToken"] == "other"
            assert await sandbox.sends() == []
            assert await queue_depth(aws.sqs, env.queue_url) == 1  # left, not deleted
            items = await settled(aws, env, {"req-1"})
    # The other worker never came back: once its lease passed, this one sent it, once.
    assert time.time() * 1000 >= lease_until
    assert items["req-1"]["Status"] == "SENT" and items["req-1"]["Attempts"] == 2
    assert await sandbox.sends_by_destination() == {"+12065550001": 1}


INVALID_BODIES: list[tuple[Any, str, bool]] = [
    # (body, ErrorReason, keyed by its own RequestId)
    ("not json {", "body", False),
    ("[1, 2]", "body", False),
    ({"RequestId": "bad id!", **request(10, RequestId=None)}, "RequestId", False),
    (request(11, Unknown="x"), "Unknown", True),
    (request(12, DestinationPhoneNumber="+1999"), "DestinationPhoneNumber", True),
    (request(13, OriginationIdentity=None), "OriginationIdentity", True),
    (request(14, MessageBody=" " * 3), "MessageBody", True),
    (request(15, MessageBody=None), "MessageBody", True),
    (request(16, MediaUrls=["https://example.com/a.jpg"]), "MediaUrls", True),
    (request(17, TimeToLive=4), "TimeToLive", True),
    (request(18, MaxPrice="1"), "MaxPrice", True),
    (request(19, Context={str(i): "v" for i in range(6)}), "Context", True),
    (request(20, NotAfter="2030-01-01T00:00:00"), "NotAfter", True),
    (request(21, DryRun="yes"), "DryRun", True),
]


async def test_invalid_requests_fail_without_a_call(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    bodies = [b for b, _, _ in INVALID_BODIES]
    sqs_ids = await enqueue(aws.sqs, env.queue_url, bodies)
    keys = []
    for (body, _, own_key), sqs_id in zip(INVALID_BODIES, sqs_ids, strict=True):
        keys.append(body["RequestId"] if own_key else sqs_id)
    async with running_worker(make_settings(env)):
        items = await settled(aws, env, set(keys))
    for (body, reason, _), key in zip(INVALID_BODIES, keys, strict=True):
        item = items[key]
        assert (item["Status"], item["ErrorCode"], item["ErrorReason"]) == (
            "FAILED",
            "INVALID_REQUEST",
            reason,
        ), (body, item)
        assert item["ErrorMessage"]
        assert item["Attempts"] == 0
        if isinstance(body, dict) and reason != "DestinationPhoneNumber":
            assert item.get("DestinationPhoneNumber") == body.get("DestinationPhoneNumber")
    assert await sandbox.sends() == []


async def test_not_after_passed_is_expired(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    await enqueue(
        aws.sqs,
        env.queue_url,
        [
            request(1, NotAfter="2020-01-01T00:00:00+02:00", CampaignId="c-1"),
            request(2, NotAfter="2999-01-01T00:00:00Z"),
        ],
    )
    async with running_worker(make_settings(env)):
        items = await settled(aws, env, {"req-1", "req-2"})
    assert items["req-1"]["Status"] == "EXPIRED" and items["req-1"]["CampaignId"] == "c-1"
    assert items["req-1"]["Attempts"] == 0
    assert items["req-2"]["Status"] == "SENT"
    assert await sandbox.sends_by_destination() == {"+12065550002": 1}


@pytest.mark.parametrize(
    ("config", "fields", "code", "reason"),
    [
        (
            {"opted_out": ["+12065550001"]},
            {},
            "ConflictException",
            "DESTINATION_PHONE_NUMBER_OPTED_OUT",
        ),
        ({"known_identities": ["+18005550199"]}, {}, "ResourceNotFoundException", None),
        (
            {"blocked_prefixes": ["+4479"]},
            {"DestinationPhoneNumber": "+447911123456"},
            "ValidationException",
            "DESTINATION_COUNTRY_BLOCKED",
        ),
    ],
)
async def test_permanent_errors_fail_once(
    aws: Aws,
    env: Env,
    sandbox: Sandbox,
    config: dict[str, Any],
    fields: dict[str, Any],
    code: str,
    reason: str | None,
) -> None:
    await sandbox.configure(**config)
    await enqueue(aws.sqs, env.queue_url, [request(1, **fields)])
    async with running_worker(make_settings(env)):
        items = await settled(aws, env, {"req-1"})
    item = items["req-1"]
    assert (item["Status"], item["ErrorCode"], item.get("ErrorReason")) == ("FAILED", code, reason)
    assert item["Attempts"] == 1  # one call, no retry
    assert item["ErrorMessage"]
    assert await sandbox.sends() == []
    assert (await sandbox.stats())["calls"] == 1


async def test_throttling_is_retried_and_slows_the_identity(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    await sandbox.configure(default_mps=5, burst_s=1)
    n = 30
    await enqueue(aws.sqs, env.queue_url, [request(i) for i in range(n)])
    settings = make_settings(
        env,
        rate_limits="default=100",
        retry_attempts=10,
        retry_budget_s=20,
        lease_s=30,
        visibility_timeout_s=40,
    )
    with capture_logs() as logs:
        async with running_worker(settings) as worker:
            items = await settled(aws, env, {f"req-{i}" for i in range(n)})
            rate_after = worker.limiter.rate_mps("+18005550100")
    assert all(i["Status"] == "SENT" for i in items.values())
    assert sorted(await sandbox.sends_by_destination()) == sorted(
        request(i)["DestinationPhoneNumber"] for i in range(n)
    )
    assert all(c == 1 for c in (await sandbox.sends_by_destination()).values())
    stats = await sandbox.stats()
    assert stats["throttled"] > 0
    retries = [e for e in logs if e["event"] == "send_retry"]
    assert retries and all(e["error_code"] == "ThrottlingException" for e in retries)
    # Attempts in the table account for every call the sandbox saw.
    assert sum(i["Attempts"] for i in items.values()) == stats["calls"]
    assert max(i["Attempts"] for i in items.values()) > 1
    assert rate_after < 100  # the identity was slowed down


async def test_transient_errors_go_retrying_then_sent(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    await sandbox.configure(fault_rate=1.0)
    await enqueue(aws.sqs, env.queue_url, [request(1)])
    settings = make_settings(
        env, retry_attempts=3, redelivery_base_delay_s=3, redelivery_max_delay_s=3
    )
    async with running_worker(settings):
        item = await wait_for(lambda: _status(aws, env, "req-1", "RETRYING"), timeout_s=20)
        assert item["ErrorCode"] == "InternalServerException"
        assert item["Attempts"] == 3 and "LeaseUntil" not in item
        assert await queue_depth(aws.sqs, env.queue_url) == 1  # back on the queue
        await sandbox.configure(fault_rate=0.0)
        items = await settled(aws, env, {"req-1"})
    item = items["req-1"]
    assert item["Status"] == "SENT" and item["Attempts"] == 4 and item["ReceiveCount"] == 2
    assert "ErrorCode" not in item
    assert await sandbox.sends_by_destination() == {"+12065550001": 1}


async def _status(aws: Aws, env: Env, request_id: str, status: str) -> Any:
    item = (await table_items(aws.ddb, env.table)).get(request_id)
    return item if item and item["Status"] == status else None


async def test_last_receive_fails_and_goes_to_dead_letter_queue(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    await sandbox.configure(fault_rate=1.0)
    await enqueue(aws.sqs, env.queue_url, [request(1)])
    settings = make_settings(env, retry_attempts=2)  # the queue's maxReceiveCount is 3
    async with running_worker(settings):
        item = await wait_for(lambda: _status(aws, env, "req-1", "FAILED"), timeout_s=30)
        dead = await wait_for(lambda: _dlq(aws, env), timeout_s=20)
    assert item["ErrorCode"] == "RETRIES_EXHAUSTED"
    assert item["ErrorReason"] == "InternalServerException"
    assert item["ReceiveCount"] == 3 and item["Attempts"] == 6
    assert json.loads(dead[0]["Body"])["RequestId"] == "req-1"
    assert await sandbox.sends() == []


async def _dlq(aws: Aws, env: Env) -> Any:
    response = await aws.sqs.receive_message(QueueUrl=env.dlq_url, WaitTimeSeconds=0)
    return response.get("Messages")


async def test_account_wide_error_cools_down(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    await sandbox.configure(account_error="AccessDeniedException")
    await enqueue(aws.sqs, env.queue_url, [request(1)])
    settings = make_settings(env, cooldown_s=3, retry_attempts=3)
    with capture_logs() as logs:
        async with running_worker(settings) as worker:
            item = await wait_for(lambda: _status(aws, env, "req-1", "RETRYING"), timeout_s=20)
            assert worker.cooldown.active
            assert item["ErrorCode"] == "AccessDeniedException" and item["Attempts"] == 1
            await enqueue(aws.sqs, env.queue_url, [request(2)])
            calls_during = (await sandbox.stats())["calls"]
            await sandbox.configure(account_error=None)
            items = await settled(aws, env, {"req-1", "req-2"})
    assert calls_during == 1  # nothing else was tried during the cool-down
    assert {i["Status"] for i in items.values()} == {"SENT"}
    events = [e["event"] for e in logs]
    assert "cooldown_started" in events and "cooldown_ended" in events
    assert await sandbox.sends_by_destination() == {"+12065550001": 1, "+12065550002": 1}


async def test_connection_errors_are_transient(
    aws: Aws, env: Env, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2", "http://127.0.0.1:9")
    await enqueue(aws.sqs, env.queue_url, [request(1)])
    async with running_worker(make_settings(env, retry_attempts=2)):
        item = await wait_for(lambda: _status(aws, env, "req-1", "RETRYING"), timeout_s=20)
    assert item["ErrorCode"] == "EndpointConnectionError" and item["Attempts"] == 2
