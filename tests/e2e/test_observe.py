"""/metrics, /healthz and /readyz of a running worker."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
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

from worker.devstack.stack import free_port
from worker.observe.exposition import identity_label


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as r:
        return r.status, await r.text()


def samples(metrics: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }


def sample(metrics: str, name_and_labels: str) -> float | None:
    """The value of ``name{label="value",...}`` in ``metrics`` (labels in any order)."""
    ((key, _),) = samples(name_and_labels + " 0").items()
    return samples(metrics).get(key)


async def test_metrics_health_and_readiness(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(env, metrics_port=port, metrics_host="127.0.0.1", cooldown_s=3)
    await enqueue(aws.sqs, env.queue_url, [request(1), request(2, DestinationPhoneNumber="x")])
    async with aiohttp.ClientSession() as http, running_worker(settings) as worker:
        assert worker.http_port == port
        status, body = await get(http, f"{base}/healthz")
        assert status == 200 and '"ok": true' in body
        status, body = await get(http, f"{base}/readyz")
        assert (status, body) == (200, '{"ready": true, "reasons": []}')

        async def two_done() -> Any:
            items = await table_items(aws.ddb, env.table)
            return len(items) == 2 and all(i["Status"] != "SENDING" for i in items.values())

        await wait_for(two_done, timeout_s=20)
        _, metrics = await get(http, f"{base}/metrics")
        assert sample(metrics, 'sms_worker_requests_total{outcome="sent",error_code=""}') == 1
        assert (
            sample(
                metrics, 'sms_worker_requests_total{outcome="failed",error_code="INVALID_REQUEST"}'
            )
            == 1
        )
        assert sample(metrics, "sms_worker_send_calls_total") == 1
        assert sample(metrics, "sms_worker_send_latency_seconds_count") == 1
        assert sample(metrics, 'sms_worker_send_latency_seconds_bucket{le="+Inf"}') == 1
        assert sample(metrics, "sms_worker_messages_received_total") == 2
        label = identity_label("+18005550100")
        assert label.startswith("+1***00#") and "8005550100" not in metrics
        assert sample(metrics, f'sms_worker_identity_rate_mps{{identity="{label}"}}') == 500
        assert sample(metrics, "sms_worker_cooldown_active") == 0
        assert "# TYPE sms_worker_send_latency_seconds histogram" in metrics
        assert "5550001" not in metrics  # no phone number in a label

        # An account-wide error: not ready during the cool-down, ready again after it.
        await sandbox.configure(account_error="ServiceQuotaExceededException")
        await enqueue(aws.sqs, env.queue_url, [request(3)])

        async def unready() -> Any:
            status, body = await get(http, f"{base}/readyz")
            return (status, body) if status == 503 else None

        status, body = await wait_for(unready, timeout_s=20)
        assert "cooldown:ServiceQuotaExceededException" in body
        _, metrics = await get(http, f"{base}/metrics")
        assert sample(metrics, "sms_worker_cooldown_active") == 1
        assert (
            sample(
                metrics,
                'sms_worker_requests_total{outcome="retrying",'
                'error_code="ServiceQuotaExceededException"}',
            )
            == 1
        )
        await sandbox.configure(account_error=None)

        async def ready() -> Any:
            return (await get(http, f"{base}/readyz"))[0] == 200

        await wait_for(ready, timeout_s=20)

        # Shutting down: not ready while in-flight sends finish.
        await sandbox.configure(latency_ms=1500)
        await enqueue(aws.sqs, env.queue_url, [request(4)])
        await wait_for(lambda: _in_flight(sandbox), timeout_s=20)
        worker.request_stop("test")
        status, body = await get(http, f"{base}/readyz")
        assert status == 503 and "shutting_down" in body
        assert (await get(http, f"{base}/healthz"))[0] == 200  # alive while draining


async def _in_flight(sandbox: Sandbox) -> bool:
    return bool((await sandbox.stats())["in_flight"])
