"""Fixtures: real local servers (moto for SQS + DynamoDB, the sandbox) over HTTP, on port 0.

The servers run as child processes for the whole session (so their CPU is not the tests'),
every test gets its own queue, dead-letter queue and table, and the sandbox is reset before
each test. Nothing on the AWS path is mocked: the worker's real clients (aiobotocore, and the
lean JSON client built from them for the hot path) talk to these servers through the standard
``AWS_ENDPOINT_URL_*`` variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import hypothesis
import pytest
from aiobotocore.session import get_session
from support import Aws, Env, Sandbox

from worker.devstack.stack import aws_env, moto_argv, sandbox_argv, sandbox_env
from worker.resources import ensure_resources

# CI runs the property tests on a fixed seed, so a red build always reproduces; locally they
# explore new examples each run.
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

LOG_DIR = Path(os.environ.get("SMS_WORKER_TEST_LOGS", "/tmp/sms-worker-test-logs"))


def _start(
    argv: list[str], ready: str, log_name: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / log_name).open("ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == ready:
            return proc, str(event["url"])
    raise RuntimeError(f"{argv} exited ({proc.wait()}) before it was ready; see {LOG_DIR}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, str]]:
    moto, moto_url = _start(moto_argv(), "moto_ready", "moto.log")
    # The sandbox publishes delivery events (when a test turns them on) to moto's SQS.
    sandbox_environ = {**os.environ, **sandbox_env(moto_url)}
    sandbox, sandbox_url = _start(sandbox_argv(), "sandbox_ready", "sandbox.log", sandbox_environ)
    env = aws_env(moto_url, sandbox_url)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield {"moto": moto_url, "sandbox": sandbox_url}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(sandbox)
        _stop(moto)


@pytest.fixture
async def sandbox(servers: dict[str, str]) -> AsyncIterator[Sandbox]:
    async with aiohttp.ClientSession() as http:
        box = Sandbox(servers["sandbox"], http)
        await box.reset()
        yield box


@pytest.fixture
async def aws(servers: dict[str, str]) -> AsyncIterator[Aws]:
    session = get_session()
    async with (
        session.create_client("sqs") as sqs,
        session.create_client("dynamodb") as ddb,
    ):
        yield Aws(sqs, ddb)


@pytest.fixture
async def env(aws: Aws) -> Env:
    name = "t-" + uuid.uuid4().hex[:12]
    res = await ensure_resources(aws.sqs, aws.ddb, queue_name=name, table=name, max_receive_count=3)
    return Env(res.queue_url, res.dlq_url, res.table)
