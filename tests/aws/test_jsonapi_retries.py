"""The JSON API client retries as botocore's standard mode does: same attempts, backoff, quota.

A local HTTP server (real sockets) answers what the test wants; the JSON API client and an
aiobotocore client in ``mode="standard"`` call it side by side.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web
from botocore.exceptions import ClientError
from support import http_server

from worker.aws.fastpath import json_client

GET = {"TableName": "t", "Key": {"RequestId": {"S": "x"}}}


@dataclass
class Server:
    url: str = ""
    status: int = 503
    error: str = "com.amazonaws.dynamodb.v20120810#InternalServerError"
    calls: list[float] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(time.monotonic())
        if self.status == 200:
            return web.json_response({"Item": {"RequestId": {"S": "x"}}})
        return web.json_response({"__type": self.error, "message": "no"}, status=self.status)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    async with http_server(state.handle) as url:
        state.url = url
        yield state


async def _clients(server: Server, stack: Any) -> tuple[Any, Any]:
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 3})
    ddb = await stack.enter_async_context(
        get_session().create_client("dynamodb", endpoint_url=server.url, config=config)
    )
    http = await stack.enter_async_context(aiohttp.ClientSession())
    credentials = await get_session().get_credentials()
    return ddb, json_client(ddb, http, credentials, read_timeout_s=5, max_attempts=3)


def _gaps(calls: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(calls)]


async def test_same_attempts_and_backoff_as_botocore(servers: Any, server: Server) -> None:
    async with AsyncExitStack() as stack:
        ddb, api = await _clients(server, stack)
        with pytest.raises(ClientError) as by_botocore:
            await ddb.get_item(**GET)
        botocore_calls, server.calls = server.calls, []
        with pytest.raises(ClientError) as by_lean:
            await api.call("GetItem", GET)
    assert len(botocore_calls) == len(server.calls) == 3
    for error in (by_botocore.value, by_lean.value):
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # Full jitter under botocore's ceilings: 1 s before the second call, 2 s before the third.
    for gaps in (_gaps(botocore_calls), _gaps(server.calls)):
        assert gaps[0] <= 1.0 + 0.3 and gaps[1] <= 2.0 + 0.3
    assert by_lean.value.response["ResponseMetadata"]["RetryAttempts"] == 2


async def test_a_validation_error_is_not_retried(servers: Any, server: Server) -> None:
    server.status, server.error = 400, "com.amazonaws.dynamodb.v20120810#ValidationException"
    async with AsyncExitStack() as stack:
        _, api = await _clients(server, stack)
        with pytest.raises(ClientError):
            await api.call("GetItem", GET)
    assert len(server.calls) == 1


async def test_the_retry_quota_stops_retries_when_spent_and_refills_on_success(
    servers: Any, server: Server
) -> None:
    async with AsyncExitStack() as stack:
        _, api = await _clients(server, stack)
        quota = api.retries.quota
        assert quota.acquire(quota.available_capacity)  # a long outage spent it all
        with pytest.raises(ClientError):
            await api.call("GetItem", GET)
        assert len(server.calls) == 1  # no capacity: no retry, as botocore
        server.status = 200
        await api.call("GetItem", GET)
        assert quota.available_capacity == 1  # each success gives a little back
