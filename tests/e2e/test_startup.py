"""Start-up checks, each through a real ``sms-worker run`` against moto: the exit code (78
configuration, 69 unavailable), one line that says what to do, a ``startup_failed`` JSON
event, and never a traceback. The warnings (no redrive policy, a queue URL on another host
than the SQS endpoint) let the worker start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import Aws, Env, make_settings, spawn_worker, wait_for, worker_env

from worker.devstack.stack import free_port, moto_argv, start_server
from worker.runtime.startup import EX_CONFIG, EX_UNAVAILABLE

pytestmark = pytest.mark.slow


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_run, env)


def assert_fails(result: subprocess.CompletedProcess[str], code: int, needle: str) -> str:
    """Exit ``code``; one plain line (containing ``needle``) besides the JSON events, one
    of them ``startup_failed``; no traceback. Returns the line."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    plain = [line for line in lines if not line.startswith("{")]
    assert len(plain) == 1, result.stderr
    (line,) = plain
    assert line.startswith("sms-worker: ") and needle in line, line
    events = [json.loads(line) for line in lines if line.startswith("{")]
    failed = [e for e in events if e["event"] == "startup_failed"]
    assert len(failed) == 1 and failed[0]["exit_code"] == code, events
    assert failed[0]["level"] == "error" and needle in failed[0]["detail"]
    return line


def env_for(env: Env, **overrides: Any) -> dict[str, str]:
    return worker_env(make_settings(env, **overrides))


async def test_no_credentials(env: Env) -> None:
    child = env_for(env)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        child.pop(name, None)
    child.update(
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
        AWS_CONFIG_FILE="/nonexistent/config",
        AWS_EC2_METADATA_DISABLED="true",
    )
    line = assert_fails(await run_worker(child), EX_CONFIG, "no AWS credentials were found")
    assert "AWS_ACCESS_KEY_ID" in line


@pytest.fixture
async def moto_with_auth() -> AsyncIterator[str]:
    """A second moto server that checks credentials (IAM access control from the first
    request): the test credentials are unknown to it."""
    environ = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server = await start_server("moto-auth", moto_argv(), "moto_ready", env=environ)
    try:
        yield server.url
    finally:
        await server.stop()


async def test_rejected_credentials(env: Env, moto_with_auth: str) -> None:
    child = env_for(env)
    child.update(AWS_ENDPOINT_URL_SQS=moto_with_auth, AWS_ENDPOINT_URL_DYNAMODB=moto_with_auth)
    line = assert_fails(await run_worker(child), EX_CONFIG, "rejected the AWS credentials")
    assert "refresh them" in line


async def test_missing_queue(env: Env) -> None:
    child = env_for(env, queue_url=env.queue_url + "-missing")
    line = assert_fails(await run_worker(child), EX_CONFIG, "does not exist")
    assert f"the queue {env.queue_url}-missing" in line and "sms-worker init" in line


async def test_missing_dead_letter_queue(aws: Aws, env: Env) -> None:
    name = "t-" + uuid.uuid4().hex[:12]
    dlq_url = (await aws.sqs.create_queue(QueueName=f"{name}-dlq"))["QueueUrl"]
    attributes = await aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": attributes["Attributes"]["QueueArn"], "maxReceiveCount": 3}
    queue_url = (
        await aws.sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)})
    )["QueueUrl"]
    await aws.sqs.delete_queue(QueueUrl=dlq_url)
    child = env_for(env, queue_url=queue_url)
    line = assert_fails(await run_worker(child), EX_CONFIG, f"the dead-letter queue {name}-dlq")
    assert "does not exist" in line and "redrive policy" in line


async def test_missing_table(env: Env) -> None:
    child = env_for(env, table=env.table + "-missing")
    line = assert_fails(await run_worker(child), EX_CONFIG, f"the table '{env.table}-missing'")
    assert "does not exist" in line and "SMS_WORKER_TABLE" in line


@pytest.mark.parametrize(
    ("key", "attributes", "found"),
    [
        ([("id", "HASH")], [("id", "S")], "id (S, HASH)"),
        (
            [("RequestId", "HASH"), ("Sent", "RANGE")],
            [("RequestId", "S"), ("Sent", "N")],
            "RequestId (S, HASH), Sent (N, RANGE)",
        ),
    ],
    ids=["another-key", "a-sort-key"],
)
async def test_a_table_with_the_wrong_key(
    aws: Aws,
    env: Env,
    key: list[tuple[str, str]],
    attributes: list[tuple[str, str]],
    found: str,
) -> None:
    table = "t-" + uuid.uuid4().hex[:12]
    await aws.ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": n, "KeyType": k} for n, k in key],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in attributes],
        BillingMode="PAY_PER_REQUEST",
    )
    line = assert_fails(await run_worker(env_for(env, table=table)), EX_CONFIG, "has the key")
    assert found in line and "RequestId" in line and "no sort key" in line


@pytest.mark.parametrize("service", ["SQS", "DYNAMODB"])
async def test_an_unreachable_endpoint(env: Env, service: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    child = env_for(env)
    child[f"AWS_ENDPOINT_URL_{service}"] = closed
    line = assert_fails(await run_worker(child), EX_UNAVAILABLE, "could not reach")
    assert closed in line and f"AWS_ENDPOINT_URL_{service}" in line


async def test_an_unknown_variable_names_the_closest_setting(env: Env) -> None:
    child = env_for(env)
    child["SMS_WORKER_RATE_LIMIT"] = "default=1"
    child["SMS_WORKER_NOTHING_LIKE_IT"] = "1"
    line = assert_fails(await run_worker(child), EX_CONFIG, "did you mean SMS_WORKER_RATE_LIMITS?")
    assert "SMS_WORKER_RATE_LIMIT is not a setting" in line
    assert "SMS_WORKER_NOTHING_LIKE_IT is not a setting;" in line


async def test_the_warnings_let_the_worker_start(aws: Aws, env: Env, tmp_path: Path) -> None:
    """A queue without a redrive policy, addressed by a URL whose host is not the SQS
    endpoint (localhost for moto's 127.0.0.1): two warnings, then the worker runs."""
    name = "t-" + uuid.uuid4().hex[:12]
    queue_url = (await aws.sqs.create_queue(QueueName=name))["QueueUrl"]
    assert "127.0.0.1" in queue_url
    other_host = queue_url.replace("127.0.0.1", "localhost")
    settings = make_settings(env, queue_url=other_host, max_receive_count=3)
    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, log)
    try:
        await wait_for(lambda: _logged(log, '"started"'), timeout_s=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
    assert code == 0
    events = {e["event"]: e for e in map(json.loads, log.read_text().splitlines())}
    mismatch = events["queue_endpoint_mismatch"]
    assert mismatch["level"] == "warning" and "localhost" in mismatch["detail"]
    assert "AWS_ENDPOINT_URL_SQS" in mismatch["detail"]
    assert events["no_redrive_policy"]["level"] == "warning"
    assert "startup_failed" not in events
    # what starting cost, for the benchmark to count out: imports and clients take CPU
    assert 0.05 < events["started"]["startup_cpu_s"] < 60


async def _logged(path: Path, needle: str) -> bool:
    return path.exists() and needle in path.read_text()
