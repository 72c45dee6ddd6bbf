"""Start and stop the local servers as child processes on free ports."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import IO, Any

REGION = "us-east-1"


@dataclass
class ServerProcess:
    name: str
    process: asyncio.subprocess.Process
    url: str

    async def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode


async def start_server(
    name: str,
    argv: Sequence[str],
    ready_event: str,
    *,
    log: IO[Any] | int | None = asyncio.subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> ServerProcess:
    """Run ``argv`` and wait for its JSON ready line ``{"event": ready_event, "url": ...}``."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=log, env=dict(env or os.environ)
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                line = await process.stdout.readline()
                if not line:
                    code = await process.wait()
                    raise RuntimeError(f"{name} exited with {code} before it was ready")
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event") == ready_event:
                    return ServerProcess(name, process, str(event["url"]))
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now, for servers that cannot be told to pick one (port 0)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def moto_argv() -> list[str]:
    return [sys.executable, "-m", "worker.devstack.moto_server", "--port", "0"]


def sandbox_argv(*options: str) -> list[str]:
    return [sys.executable, "-m", "worker.sandbox", "--port", "0", *options]


@dataclass
class LocalStack:
    """moto (SQS + DynamoDB) and the sandbox, each in its own process."""

    sandbox_options: Sequence[str] = ()
    log: IO[Any] | int | None = asyncio.subprocess.DEVNULL
    moto: ServerProcess | None = None
    sandbox: ServerProcess | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def __aenter__(self) -> LocalStack:
        self.moto = await start_server("moto", moto_argv(), "moto_ready", log=self.log)
        self._stack.push_async_callback(self.moto.stop)
        self.sandbox = await start_server(
            "sandbox",
            sandbox_argv(*self.sandbox_options),
            "sandbox_ready",
            log=self.log,
            env={**os.environ, **sandbox_env(self.moto.url)},
        )
        self._stack.push_async_callback(self.sandbox.stop)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def aws_env(self) -> dict[str, str]:
        """The standard AWS variables that point every client at the local servers."""
        assert self.moto is not None and self.sandbox is not None
        return aws_env(self.moto.url, self.sandbox.url)


def sandbox_env(moto_url: str) -> dict[str, str]:
    """The sandbox's own AWS variables: it publishes delivery events to moto's SQS."""
    env = aws_env(moto_url, "")
    del env["AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2"]
    return env


def aws_env(moto_url: str, sandbox_url: str) -> dict[str, str]:
    return {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "AWS_ENDPOINT_URL_SNS": moto_url,
        "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2": sandbox_url,
    }
