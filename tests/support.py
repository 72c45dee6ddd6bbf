"""Helpers shared by the tests that use the local servers (fixtures are in conftest.py).

A module of its own, not conftest: ``tests/sandbox`` has a conftest too, and importing
``conftest`` by name picks whichever was loaded first.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from worker.settings import Settings


class Sandbox:
    """The sandbox's admin API (config, record of sends, counters)."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self._http = http

    async def configure(self, **patch: Any) -> dict[str, Any]:
        async with self._http.post(f"{self.url}/_sandbox/config", json=patch) as r:
            body: dict[str, Any] = await r.json()
            assert r.status == 200, body
            return body

    async def sends(self) -> list[dict[str, Any]]:
        async with self._http.get(f"{self.url}/_sandbox/sends") as r:
            return list((await r.json())["sends"])

    async def sent_at_least(self, n: int) -> bool:
        """Whether ``n`` sends have reached the sandbox (a ``wait_for`` predicate)."""
        return len(await self.sends()) >= n

    async def stats(self) -> dict[str, Any]:
        async with self._http.get(f"{self.url}/_sandbox/stats") as r:
            body: dict[str, Any] = await r.json()
            return body

    async def reset(self) -> None:
        async with self._http.post(f"{self.url}/_sandbox/reset") as r:
            assert r.status == 200
        await self.configure(
            default_mps=None,
            mps={},
            burst_s=1.0,
            latency_ms=0,
            latency_jitter_ms=0,
            fault_rate=0,
            opted_out=[],
            known_identities=None,
            account_error=None,
            spend_limit_reached=[],
            events_queue_url=None,
            events_envelope="raw",
            events_outcomes={"delivered": 1.0},
            events_delay_ms=0,
            events_jitter_ms=0,
            events_duplicate_rate=0,
            events_reorder=False,
            cut_after_accept_rate=0,
        )

    async def sends_by_destination(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for send in await self.sends():
            counts[send["destination"]] = counts.get(send["destination"], 0) + 1
        return counts


@dataclass
class Aws:
    sqs: Any
    ddb: Any


@dataclass
class Env:
    queue_url: str
    dlq_url: str
    table: str


def make_settings(env: Env, **overrides: Any) -> Settings:
    """Settings sized for tests: short polls, leases and delays."""
    values: dict[str, Any] = {
        "queue_url": env.queue_url,
        "table": env.table,
        "wait_time_s": 1,
        "visibility_timeout_s": 10,
        "max_token_wait_s": 4,
        "lease_s": 8,
        "send_timeout_s": 2,
        "connect_timeout_s": 1,
        "retry_budget_s": 3,
        "retry_attempts": 4,
        "retry_backoff_base_s": 0.05,
        "retry_backoff_max_s": 0.5,
        "redelivery_base_delay_s": 1,
        "redelivery_max_delay_s": 2,
        "cooldown_s": 2,
        "shutdown_grace_s": 5,
        "progress_interval_s": 0,
        "campaign_counters_flush_s": 1,
        "ack_flush_ms": 250,
        "receive_linger_ms": 250,
        "rate_limits": "default=500",
        "log_format": "json",
        "metrics_port": 0,
    }
    values.update(overrides)
    return Settings(**values)


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment for a ``sms-worker run`` child process with these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if name == "rate_limits":
            value = ",".join(f"{k}={v}" for k, v in value.items())
        env[f"SMS_WORKER_{name.upper()}"] = str(value)
    return env


def spawn_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env=worker_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Any]:
    """Run a Worker in this process until the block ends (then a graceful stop)."""
    from worker.runtime.worker import Worker

    worker = Worker(settings)
    task = asyncio.create_task(worker.run())
    ready = asyncio.create_task(worker.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()
        raise RuntimeError("worker stopped before it was ready")
    try:
        yield worker
    finally:
        worker.request_stop("test finished")
        assert await asyncio.wait_for(task, 30) == 0


def request(n: int, **fields: Any) -> dict[str, Any]:
    """A valid request; destination derives from ``n`` so sends can be told apart."""
    body: dict[str, Any] = {
        "DestinationPhoneNumber": f"+1206555{n % 10000:04d}",
        "OriginationIdentity": "+18005550100",
        "MessageBody": f"hello {n}",
        "RequestId": f"req-{n}",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


async def enqueue(sqs: Any, queue_url: str, bodies: list[Any]) -> list[str]:
    """Send raw bodies (dicts are JSON-encoded); returns the SQS MessageIds in order."""
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        entries = [
            {"Id": str(i), "MessageBody": b if isinstance(b, str) else json.dumps(b)}
            for i, b in enumerate(chunk)
        ]
        response = await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        assert not response.get("Failed"), response.get("Failed")
        by_id = {e["Id"]: e["MessageId"] for e in response["Successful"]}
        ids += [by_id[str(i)] for i in range(len(chunk))]
    return ids


async def table_items(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    from worker.status.codec import decode_item
    from worker.status.model import KeyFamily

    families = tuple(family.value for family in KeyFamily)

    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = await ddb.scan(**kwargs)
        for raw in page.get("Items", []):
            item = decode_item(raw)
            if not item["RequestId"].startswith(families):  # counters, rate shares
                items[item["RequestId"]] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def queue_depth(sqs: Any, queue_url: str) -> int:
    attrs = (
        await sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


async def wait_for(predicate: Any, timeout_s: float = 60.0, interval_s: float = 0.2) -> Any:
    """Poll an async predicate until it returns something truthy; fail with its last value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")


@asynccontextmanager
async def http_server(handler: Any, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """A real HTTP server on a free port that answers every ``POST /`` with ``handler``;
    yields its URL (an IPv6 ``host`` is bracketed)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    finally:
        await runner.cleanup()
