"""Helpers of the producer tests (a unique module name, so it never clashes on sys.path)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web

HEADER = [
    "RequestId",
    "DestinationPhoneNumber",
    "OriginationIdentity",
    "MessageBody",
    "MediaUrls",
    "TimeToLive",
    "DryRun",
    "Context.orderId",
]
BATCH_TARGET = "AmazonSQS.SendMessageBatch"
#: botocore's own retries off: the producer's retry loop is what is under test.
NO_RETRIES = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})


def phone(n: int) -> str:
    return f"+1206555{n % 10000:04d}"


def csv_text(rows: Iterable[dict[str, str]], header: list[str] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def good_row(n: int, **cells: str) -> dict[str, str]:
    row = {
        "RequestId": f"csv-{n}",
        "DestinationPhoneNumber": phone(n),
        "OriginationIdentity": "pool-producer",
        "MessageBody": f"hello {n}",
        "Context.orderId": f"order-{n}",
    }
    row.update(cells)
    return row


async def run_enqueue(*args: str, timeout_s: float = 60) -> tuple[int, str, str]:
    """``python -m worker enqueue ARGS`` as a child process; exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "enqueue",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Receive (and hide for a minute) every message on the queue; their JSON bodies."""
    bodies: list[dict[str, Any]] = []
    empty = 0
    while empty < 2:
        response = await sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        )
        messages = response.get("Messages", [])
        empty = 0 if messages else empty + 1
        bodies += [json.loads(m["Body"]) for m in messages]
    return bodies


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Fault:
    """What the proxy does to one SendMessageBatch call."""

    status: int | None = None  # answer the whole call with this HTTP status (nothing sent)
    code: str = "InternalError"
    fail_ids: tuple[str, ...] = ()  # these entries are not forwarded and are listed in Failed
    sender_fault: bool = False


@dataclass
class SqsProxy:
    """A real HTTP server in front of moto that injects faults into SendMessageBatch calls.

    ``faults`` apply to successive SendMessageBatch calls, in order; ``calls`` records the
    entry Ids of every SendMessageBatch call that reached the proxy.
    """

    target: str
    url: str = ""
    faults: list[Fault] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0  # most SendMessageBatch calls open at once

    async def handle(self, request: web.Request) -> web.StreamResponse:
        is_batch = request.headers.get("X-Amz-Target") == BATCH_TARGET
        self.in_flight += is_batch
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._handle(request, is_batch)
        finally:
            self.in_flight -= is_batch

    async def _handle(self, request: web.Request, is_batch: bool) -> web.StreamResponse:
        body = await request.read()
        fault: Fault | None = None
        if is_batch:
            payload = json.loads(body)
            self.calls.append([entry["Id"] for entry in payload["Entries"]])
            fault = self.faults.pop(0) if self.faults else None
            if fault is not None and fault.status is not None:
                error = {"__type": f"com.amazonaws.sqs#{fault.code}", "message": "injected"}
                return web.json_response(
                    error, status=fault.status, content_type="application/x-amz-json-1.0"
                )
            if fault is not None:
                payload["Entries"] = [
                    e for e in payload["Entries"] if e["Id"] not in fault.fail_ids
                ]
                body = json.dumps(payload).encode()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as upstream,
        ):
            answer = await upstream.read()
            status = upstream.status
            kept = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() in ("content-type", "x-amzn-requestid", "x-amzn-query-error")
            }
        if fault is not None and status == 200:
            result = json.loads(answer)
            result.setdefault("Failed", [])
            result["Failed"] += [
                {
                    "Id": key,
                    "SenderFault": fault.sender_fault,
                    "Code": fault.code,
                    "Message": "injected by the test proxy",
                }
                for key in fault.fail_ids
            ]
            answer = json.dumps(result).encode()
        return web.Response(body=answer, status=status, headers=kept)


@asynccontextmanager
async def sqs_proxy(target: str) -> AsyncIterator[SqsProxy]:
    proxy = SqsProxy(target)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        proxy.url = f"http://127.0.0.1:{port}"
        yield proxy
    finally:
        await runner.cleanup()


@asynccontextmanager
async def sqs_client(endpoint_url: str | None = None) -> AsyncIterator[Any]:
    """A real aiobotocore SQS client without botocore's own retries."""
    extra = {"endpoint_url": endpoint_url} if endpoint_url else {}
    async with get_session().create_client("sqs", config=NO_RETRIES, **extra) as client:
        yield client
