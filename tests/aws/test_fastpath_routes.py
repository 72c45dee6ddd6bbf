"""The JSON API client posts where botocore would, or the service stays on aiobotocore.

Proxies, IPv6-literal endpoints and DynamoDB's account-ID endpoints, each checked against
what botocore itself computes for the same client.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web
from botocore.auth import _host_from_url
from support import http_server

from worker.aws.fastpath import endpoint_route, json_client, proxy_route
from worker.aws.sigv4 import canonical_host


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4566",
        "https://dynamodb.eu-west-1.amazonaws.com",
        "https://DynamoDB.eu-west-1.amazonaws.com:443",
        "http://[::1]:4566",
        "http://[::1]",
        "https://[2001:db8::5]:8443",
    ],
)
def test_the_signed_host_is_botocores(url: str) -> None:
    from yarl import URL

    parsed = URL(url)
    assert canonical_host(parsed.scheme, parsed.host or "", parsed.explicit_port) == (
        _host_from_url(url)
    )


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
async def ipv6_server() -> AsyncIterator[tuple[str, list[str]]]:
    hosts: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hosts.append(request.headers["Host"])
        return web.json_response({})

    async with http_server(answer, "::1") as url:
        yield url, hosts


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_an_ipv6_endpoint_sends_the_host_it_signs(
    servers: Any, ipv6_server: tuple[str, list[str]]
) -> None:
    url, hosts = ipv6_server
    async with (
        get_session().create_client("dynamodb", endpoint_url=url) as ddb,
        aiohttp.ClientSession() as http,
    ):
        credentials = await get_session().get_credentials()
        api = json_client(ddb, http, credentials, read_timeout_s=5, max_attempts=1)
        await api.call("GetItem", {"TableName": "t", "Key": {"RequestId": {"S": "x"}}})
    assert hosts == [_host_from_url(url)]


async def test_proxies_are_botocores_or_the_service_stays_on_aiobotocore(
    servers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = "https://dynamodb.eu-west-1.amazonaws.com"
    session = get_session()
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with session.create_client("dynamodb", endpoint_url=endpoint) as ddb:
        assert proxy_route(ddb) == (None, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.internal:3128")
    async with session.create_client("dynamodb", endpoint_url=endpoint) as ddb:
        assert proxy_route(ddb) == ("http://user:pw@proxy.internal:3128", None)
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    async with session.create_client("dynamodb", endpoint_url=endpoint) as ddb:
        assert proxy_route(ddb) == (None, None)  # bypassed, as botocore bypasses it
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.internal:3129")
    async with session.create_client("dynamodb", endpoint_url=endpoint) as ddb:
        proxy, problem = proxy_route(ddb)
        assert proxy is None and problem is not None and "not http://" in problem
    config = AioConfig(
        proxies={"https": "http://p:1"}, proxies_config={"proxy_use_forwarding_for_https": True}
    )
    async with session.create_client("dynamodb", endpoint_url=endpoint, config=config) as ddb:
        assert proxy_route(ddb)[1] is not None


async def test_account_id_endpoints_keep_dynamodb_on_aiobotocore(
    servers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCOUNT_ID", "123456789012")
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "required")
    async with get_session().create_client("dynamodb", region_name="eu-west-1") as ddb:
        problem = await endpoint_route(ddb)
    assert problem is not None and "123456789012.ddb.eu-west-1" in problem
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    async with get_session().create_client("dynamodb", region_name="eu-west-1") as ddb:
        assert await endpoint_route(ddb) is None  # the regional endpoint, as meta says
