"""The Python API against the real local queue (moto over HTTP, real aiobotocore clients),
and the retry loop against a real fault-injecting HTTP proxy in front of moto."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from producer_support import Fault, drain, sqs_client, sqs_proxy
from support import Aws, Env, queue_depth, request

from worker.producer import (
    Enqueuer,
    InvalidSendRequest,
    QueueUnavailable,
    RetryPolicy,
    enqueue,
    prepare_request,
    region_of,
    validate_request,
)

FAST = RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05)


async def test_put_and_put_many_accept_dicts_and_send_requests(aws: Aws, env: Env) -> None:
    typed = validate_request(request(1, Context={"orderId": "o-1"}, DryRun=True))
    sent: list[int] = []
    async with Enqueuer(env.queue_url, concurrency=2, on_sent=sent.append) as q:
        await q.put(typed)
        await q.put(request(2), tag="second")
        assert await q.put_many(request(n) for n in range(3, 26)) == 23
        await q.flush()
        assert q.result.enqueued == 25
    assert q.result.ok and q.result.failed == 0 and sum(sent) == 25
    bodies = {b["RequestId"]: b for b in await drain(aws.sqs, env.queue_url)}
    assert len(bodies) == 25
    assert bodies["req-1"] == request(1, Context={"orderId": "o-1"}, DryRun=True)
    assert bodies["req-25"] == request(25)


async def test_enqueue_function_and_async_iterables(aws: Aws, env: Env) -> None:
    async def produce() -> Any:
        for n in range(12):
            yield request(n)

    result = await enqueue(env.queue_url, produce(), concurrency=3)
    assert (result.enqueued, result.failed) == (12, 0) and result.elapsed_s > 0
    assert result.rate > 0
    assert await queue_depth(aws.sqs, env.queue_url) == 12


async def test_invalid_requests_raise_and_a_list_is_all_or_nothing(aws: Aws, env: Env) -> None:
    bad = request(2, DestinationPhoneNumber="+1555")
    with pytest.raises(InvalidSendRequest) as caught:
        await enqueue(env.queue_url, [request(1), bad, request(3)])
    error = caught.value
    assert (error.index, error.field) == (1, "DestinationPhoneNumber")
    assert "+1555" not in str(error) and "E.164" in str(error) and "#1" in str(error)
    assert await queue_depth(aws.sqs, env.queue_url) == 0

    async with Enqueuer(env.queue_url) as q:
        with pytest.raises(InvalidSendRequest, match="TimeToLive"):
            await q.put(request(4, TimeToLive="60"))
        with pytest.raises(InvalidSendRequest, match="not a SendMediaMessage parameter"):
            await q.put({**request(5), "Colour": "red"})
        with pytest.raises(InvalidSendRequest, match="not JSON data"):
            await q.put(request(6, MessageBody=float("nan")))
        with pytest.raises(TypeError, match="SendRequest or a dict"):
            await q.put("{}")  # type: ignore[arg-type]
        await q.put(request(7))
    assert q.result.enqueued == 1
    with pytest.raises(RuntimeError, match="async with"):
        await q.put(request(8))
    with pytest.raises(TypeError, match=r"\[request\]"):
        await enqueue(env.queue_url, request(9))  # type: ignore[arg-type]


async def test_a_missing_queue_stops_the_run_with_advice(aws: Aws, env: Env) -> None:
    missing = env.queue_url.rsplit("/", 1)[0] + "/no-such-queue-" + uuid.uuid4().hex[:6]
    with pytest.raises(QueueUnavailable) as caught:
        await enqueue(missing, [request(n) for n in range(25)], concurrency=1)
    error = caught.value
    assert error.code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    assert "does not exist" in str(error) and "--queue-url" in str(error)
    assert error.result is not None
    assert (error.result.enqueued, error.result.failed) == (0, 25)


async def test_a_rejected_call_is_reported_not_retried(aws: Aws, servers: dict[str, str]) -> None:
    """SQS refuses the whole call (a body over the queue's 1 KiB limit): 4xx, no retry."""
    name = "t-small-" + uuid.uuid4().hex[:8]
    url = (await aws.sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "1024"}))[
        "QueueUrl"
    ]
    async with sqs_proxy(servers["moto"]) as proxy, sqs_client(proxy.url) as client:
        async with Enqueuer(url, client=client, retry=FAST) as q:
            await q.put(request(1, MessageBody="x" * 1500), tag="line-2")
        assert proxy.calls == [["0"]]
        [failure] = q.result.failures
        assert (failure.tag, failure.code, failure.attempts) == (
            "line-2",
            "InvalidParameterValue",
            1,
        )
        assert failure.request_id == "req-1"
    assert await queue_depth(aws.sqs, url) == 0


async def test_failed_entries_without_sender_fault_are_retried(
    aws: Aws, env: Env, servers: dict[str, str]
) -> None:
    async with sqs_proxy(servers["moto"]) as proxy, sqs_client(proxy.url) as client:
        proxy.faults = [Fault(fail_ids=("3", "7"), code="InternalError"), Fault(status=500)]
        async with Enqueuer(env.queue_url, client=client, retry=FAST) as q:
            await q.put_many(request(n) for n in range(10))
    # the batch, then the two failed entries (a 500), then those two again
    assert proxy.calls == [[str(n) for n in range(10)], ["3", "7"], ["3", "7"]]
    assert (q.result.enqueued, q.result.failed) == (10, 0)
    ids = sorted(b["RequestId"] for b in await drain(aws.sqs, env.queue_url))
    assert ids == sorted(f"req-{n}" for n in range(10))  # each exactly once


async def test_sender_fault_entries_are_reported_not_retried(
    aws: Aws, env: Env, servers: dict[str, str]
) -> None:
    failures: list[Any] = []
    async with sqs_proxy(servers["moto"]) as proxy, sqs_client(proxy.url) as client:
        proxy.faults = [Fault(fail_ids=("2",), sender_fault=True, code="InvalidMessageContents")]
        async with Enqueuer(
            env.queue_url, client=client, retry=FAST, on_failure=failures.append
        ) as q:
            for n in range(10):
                await q.put(request(n), tag=100 + n)
    assert len(proxy.calls) == 1
    assert [(f.tag, f.request_id, f.code, f.attempts) for f in failures] == [
        (102, "req-2", "InvalidMessageContents", 1)
    ]
    assert (q.result.enqueued, q.result.failed, q.result.ok) == (9, 1, False)
    assert await queue_depth(aws.sqs, env.queue_url) == 9


async def test_throttling_that_persists_fails_after_max_attempts(
    aws: Aws, env: Env, servers: dict[str, str]
) -> None:
    async with sqs_proxy(servers["moto"]) as proxy, sqs_client(proxy.url) as client:
        proxy.faults = [Fault(status=400, code="RequestThrottled")] * 3
        async with Enqueuer(env.queue_url, client=client, retry=FAST) as q:
            await q.put_many(request(n) for n in range(4))
    assert len(proxy.calls) == 3
    assert q.result.failed == 4 and {f.attempts for f in q.result.failures} == {3}
    assert {f.code for f in q.result.failures} == {"RequestThrottled"}
    assert [f.tag for f in q.result.failures] == [0, 1, 2, 3]
    assert await queue_depth(aws.sqs, env.queue_url) == 0


async def test_batches_in_flight_are_bounded_by_concurrency(
    aws: Aws, env: Env, servers: dict[str, str]
) -> None:
    async with (
        sqs_proxy(servers["moto"]) as proxy,
        sqs_client(proxy.url) as client,
        Enqueuer(env.queue_url, client=client, concurrency=3) as q,
    ):
        await q.put_many(request(n) for n in range(200))
    assert len(proxy.calls) == 20 and all(len(call) == 10 for call in proxy.calls)
    assert 2 <= proxy.max_in_flight <= 3, proxy.max_in_flight  # concurrent, and bounded
    assert q.result.enqueued == 200


def test_prepared_bodies_and_regions() -> None:
    prepared = prepare_request(request(1, MessageBody="caf\u00e9"))
    assert prepared.body.isascii() and prepared.request_id == "req-1"
    assert prepare_request(prepared) is prepared
    assert region_of("https://sqs.eu-west-1.amazonaws.com/123456789012/q") == "eu-west-1"
    assert region_of("https://us-west-2.queue.amazonaws.com/123456789012/q") == "us-west-2"
    assert region_of("http://127.0.0.1:4566/000000000000/q") is None


async def test_sms_requests_as_models_and_dicts(aws: Aws, env: Env) -> None:
    from sms_cases import sms

    from worker.model import SmsRequest

    typed = validate_request(sms(1, MessageType="TRANSACTIONAL"))
    assert isinstance(typed, SmsRequest)
    async with Enqueuer(env.queue_url) as q:
        await q.put(typed)
        await q.put(sms(2, DestinationCountryParameters={"IN_ENTITY_ID": "1101"}))
        with pytest.raises(InvalidSendRequest, match="belongs to another channel"):
            await q.put(sms(3, MediaUrls=["s3://media-b/a.jpg"]))
        with pytest.raises(InvalidSendRequest, match="Keyword"):
            await q.put(sms(4, Keyword="K" * 31))
    bodies = {b["RequestId"]: b for b in await drain(aws.sqs, env.queue_url)}
    assert bodies == {
        "sms-1": sms(1, MessageType="TRANSACTIONAL"),
        "sms-2": sms(2, DestinationCountryParameters={"IN_ENTITY_ID": "1101"}),
    }
