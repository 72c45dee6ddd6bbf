"""/metrics as Prometheus parses it, and /readyz under failing receives, on real workers."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Aws, Env, Sandbox, enqueue, make_settings, request, running_worker, wait_for

from worker.devstack.faultproxy import FaultProxy
from worker.devstack.stack import free_port
from worker.health import DependencyHealth
from worker.masking import mask_identity
from worker.observe.exposition import identity_label
from worker.observe.queues import SAMPLED_ATTRIBUTES, QueueSampler
from worker.queue.consumer import RECEIVE_ATTRIBUTES
from worker.queue.message import QueueMessage

# Two phone-number identities that mask alike (+1***00): two series all the same.
TWIN_IDENTITIES = ("+12065550100", "+13105550100")


async def scrape(http: aiohttp.ClientSession, port: int) -> tuple[str, str]:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        return r.headers["Content-Type"], await r.text()


async def readyz(http: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
        return r.status, await r.json()


def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels); a duplicate series fails the test."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = s.value
    return found


async def test_metrics_parse_with_unique_series(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    assert mask_identity(TWIN_IDENTITIES[0]) == mask_identity(TWIN_IDENTITIES[1])
    await enqueue(aws.sqs, env.dlq_url, ["dead 1", "dead 2"])  # two dead letters
    await enqueue(
        aws.sqs,
        env.queue_url,
        [request(i, OriginationIdentity=o) for i, o in enumerate(TWIN_IDENTITIES)],
    )
    port = free_port()
    settings = make_settings(
        env, metrics_port=port, metrics_host="127.0.0.1", rate_limits="default=500"
    )
    async with aiohttp.ClientSession() as http, running_worker(settings) as worker:

        async def sent_and_sampled() -> bool:
            return worker.metrics.sent == 2 and worker.queues.sampled_at is not None

        await wait_for(sent_and_sampled, timeout_s=20)
        content_type, text = await scrape(http, port)
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    found = series(text)
    rates = {dict(labels)["identity"]: v for (name, labels), v in found.items()
             if name == "sms_worker_identity_rate_mps"}  # fmt: skip
    assert set(rates) == {identity_label(i) for i in TWIN_IDENTITIES}
    assert len(rates) == 2 and all(label.startswith("+1***00#") for label in rates)
    assert not any(i in text for i in TWIN_IDENTITIES)
    assert found[("sms_worker_requests_total", (("error_code", ""), ("outcome", "sent")))] == 2
    assert found[("sms_worker_queue_messages", (("queue", "dlq"), ("state", "visible")))] == 2
    assert ("sms_worker_queue_messages", (("queue", "main"), ("state", "visible"))) in found
    assert found[("sms_worker_ready", ())] == 1
    assert found[("sms_worker_queue_sampled_timestamp_seconds", ())] > time.time() - 60
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "sms_worker_send_latency_seconds_count",
        "sms_worker_queue_oldest_message_age_seconds",
    ):
        assert (name, ()) in found, name


async def test_the_oldest_held_message_and_the_dead_letter_queue(aws: Aws, env: Env) -> None:
    """The sampler on real queues: depths of both (the DLQ found from the redrive policy) and
    the age, from SentTimestamp, of the oldest message held."""
    await enqueue(aws.sqs, env.queue_url, ["a", "b", "c"])
    await enqueue(aws.sqs, env.dlq_url, ["dead"])
    raw = await aws.sqs.receive_message(
        QueueUrl=env.queue_url,
        MaxNumberOfMessages=2,
        MessageSystemAttributeNames=[*RECEIVE_ATTRIBUTES, *SAMPLED_ATTRIBUTES],
    )
    held = [QueueMessage.from_sqs(m) for m in raw["Messages"]]
    assert all(m.sent_timestamp for m in held)
    oldest = min(int(str(m.sent_timestamp)) for m in held) / 1000
    health = DependencyHealth()
    sampler = QueueSampler(aws.sqs, env.queue_url, health, lambda: held, clock=lambda: oldest + 42)
    await sampler.sample()
    assert sampler.oldest_age_s == pytest.approx(42)
    assert sampler.depth[("main", "visible")] == 3 - len(held)
    assert sampler.depth[("main", "not_visible")] == len(held)
    assert sampler.depth[("dlq", "visible")] == 1
    held = []
    await sampler.sample()
    assert sampler.oldest_age_s == 0  # nothing held: nothing to age

    gone = QueueSampler(aws.sqs, env.queue_url + "-missing", health, list)
    with pytest.raises(Exception, match=r"NonExistentQueue|does not exist"):
        await gone.sample()
    ((key, count),) = health.failures.items()
    assert key[:2] == ("sqs", "get_queue_attributes") and count == 1
    assert not health.failing("sqs")  # a failed sample is not a failing receive


async def test_readyz_503_while_receives_fail_then_200(
    aws: Aws, env: Env, servers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    settings = make_settings(
        env, metrics_port=port, metrics_host="127.0.0.1", dependency_unready_s=1
    )
    async with FaultProxy(servers["moto"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
        async with aiohttp.ClientSession() as http, running_worker(settings):
            assert (await readyz(http, port))[0] == 200
            proxy.inject("5xx", 60, operations={"ReceiveMessage"})

            async def unready() -> Any:
                status, body = await readyz(http, port)
                return body if status == 503 else None

            body = await wait_for(unready, timeout_s=20)
            assert body["reasons"] == ["sqs_failing:InternalError"]
            found = series((await scrape(http, port))[1])
            assert found[("sms_worker_ready", ())] == 0
            key = (("code", "InternalError"), ("dependency", "sqs"), ("operation", "receive"))
            assert found[("sms_worker_dependency_failures_total", key)] >= 1
            assert found[("sms_worker_dependency_failing_seconds", (("dependency", "sqs"),))] > 1

            proxy.clear()  # SQS answers again: ready by itself

            async def ready() -> bool:
                return (await readyz(http, port))[0] == 200

            await wait_for(ready, timeout_s=40)
            found = series((await scrape(http, port))[1])
            assert found[("sms_worker_ready", ())] == 1
