"""The clients the per-message path calls: JSON API clients, or the aiobotocore ones.

With ``fast_path`` on (the default), the calls a message costs (receive, claim, send, status
write, delete, visibility change) go through :class:`~worker.aws.jsonapi.JsonApiClient`, each
configured from the aiobotocore client it stands in for; everything else (start-up checks,
``init``, ``status``, the producer) stays on aiobotocore. With it off, these adapters are not
used and the aiobotocore clients serve every call. Both paths run the same tests.
"""

from __future__ import annotations

import functools
import ssl
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
from botocore.httpsession import ProxyConfiguration, get_cert_path
from botocore.utils import get_environ_proxies
from yarl import URL

from worker.aws.clients import AwsClients
from worker.aws.jsonapi import JsonApiClient, endpoint_problem
from worker.logs import get_logger
from worker.model.channels import CHANNELS
from worker.settings import Settings

log = get_logger(__name__)


class _Adapter:
    def __init__(self, api: JsonApiClient) -> None:
        self.api = api


class DynamoDBCalls(_Adapter):
    async def update_item(self, **params: Any) -> dict[str, Any]:
        return await self.api.call("UpdateItem", params)

    async def get_item(self, **params: Any) -> dict[str, Any]:
        return await self.api.call("GetItem", params)


class SqsCalls(_Adapter):
    async def receive_message(self, **params: Any) -> dict[str, Any]:
        return await self.api.call("ReceiveMessage", params)

    async def delete_message_batch(self, **params: Any) -> dict[str, Any]:
        return await self.api.call("DeleteMessageBatch", params)

    async def change_message_visibility_batch(self, **params: Any) -> dict[str, Any]:
        return await self.api.call("ChangeMessageVisibilityBatch", params)


class SmsCalls(_Adapter):
    """One method per registered channel, named as the SDK names its operation
    (``send_media_message`` for MMS), so the sender calls either client the same way."""

    def __init__(self, api: JsonApiClient) -> None:
        super().__init__(api)
        for channel in CHANNELS.values():
            setattr(self, channel.method, functools.partial(self._call, channel.operation))

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return await self.api.call(operation, params)


@dataclass(frozen=True, slots=True)
class FastPath:
    sqs: Any
    dynamodb: Any
    sms: Any


def _ssl_context(session: Any) -> ssl.SSLContext:
    """Verify TLS as botocore does: ``AWS_CA_BUNDLE`` / ``ca_bundle``, else its bundle."""
    bundle = session.get_config_variable("ca_bundle")
    return ssl.create_default_context(cafile=get_cert_path(bundle or True))


# One operation per service whose endpoint the JSON API client checks against botocore's.
_PROBE_OPERATION = {"dynamodb": "UpdateItem", "sqs": "ReceiveMessage"}


def proxy_route(client: Any) -> tuple[str | None, str | None]:
    """The proxy botocore would use for ``client``'s endpoint, and why the JSON API client cannot
    (``(proxy_url, problem)``): botocore takes the client's ``proxies`` or else the
    environment's (``HTTPS_PROXY``, ``NO_PROXY``, ...); an ``https://`` proxy, or TLS settings
    for the proxy (``proxies_config``), are botocore features the JSON API client does not copy."""
    endpoint = client.meta.endpoint_url
    config = client.meta.config
    if getattr(config, "proxies_config", None):
        return None, "the client's proxies_config (TLS to the proxy) is botocore's"
    proxies = getattr(config, "proxies", None) or get_environ_proxies(endpoint)
    proxy = ProxyConfiguration(proxies=proxies).proxy_url_for(endpoint)
    if not proxy:
        return None, None
    if URL(proxy).scheme != "http":
        return None, f"the proxy for {endpoint} is not http:// (botocore tunnels it itself)"
    return proxy, None


async def endpoint_route(client: Any) -> str | None:
    """Why the JSON API client would post somewhere else than botocore (None: same endpoint).

    botocore resolves each call's endpoint through the service's rule set, which for DynamoDB
    can route to an account-ID endpoint (``AWS_ACCOUNT_ID_ENDPOINT_MODE``, credentials with an
    account id) while ``meta.endpoint_url`` stays the regional one."""
    name = client.meta.service_model.service_name
    resolver = getattr(client, "_ruleset_resolver", None)
    operation = _PROBE_OPERATION.get(name)
    if resolver is None or operation is None:
        return None
    model = client.meta.service_model.operation_model(operation)
    try:
        resolved = await resolver.construct_endpoint(model, {}, {})
    except Exception as exc:  # botocore would fail the call the same way
        return f"botocore's endpoint rules failed ({type(exc).__name__}: {exc})"
    if URL(resolved.url) != URL(client.meta.endpoint_url):
        return f"botocore routes {operation} to {resolved.url}, not {client.meta.endpoint_url}"
    return None


def json_client(
    client: Any,
    http: aiohttp.ClientSession,
    credentials: Any,
    *,
    read_timeout_s: float,
    max_attempts: int,
    connect_timeout_s: float = 60.0,
    proxy: str | None = None,
) -> JsonApiClient:
    """A :class:`JsonApiClient` that makes the requests ``client`` (aiobotocore) would."""
    meta = client.meta
    model = meta.service_model
    if model.protocol != "json":
        raise ValueError(f"{model.service_name} speaks {model.protocol}, not AWS JSON")
    return JsonApiClient(
        http,
        endpoint_url=meta.endpoint_url,
        region=meta.region_name,
        signing_name=model.signing_name,
        target_prefix=model.metadata["targetPrefix"],
        json_version=model.metadata["jsonVersion"],
        query_compatible=model.is_query_compatible,
        check_crc32=model.service_name == "dynamodb",
        credentials=credentials,
        service_model=model,
        read_timeout_s=read_timeout_s,
        connect_timeout_s=connect_timeout_s,
        max_attempts=max_attempts,
        proxy=proxy,
    )


async def open_fast_path(
    stack: AsyncExitStack, settings: Settings, clients: AwsClients
) -> FastPath:
    """The hot path's clients; ``stack`` closes the JSON API clients' sessions (before the
    aiobotocore clients, which were entered first)."""
    if not settings.fast_path:
        return FastPath(sqs=clients.sqs, dynamodb=clients.dynamodb, sms=clients.sms)
    credentials = await clients.session.get_credentials()
    ssl_context = _ssl_context(clients.session)
    pool = settings.connection_pool_size

    async def json_client_for(
        client: Any, adapter: type[_Adapter], read_timeout_s: float, max_attempts: int
    ) -> Any:
        proxy, problem = proxy_route(client)
        problem = endpoint_problem(client.meta.endpoint_url) or problem
        problem = problem or await endpoint_route(client)
        if problem:
            log.warning(
                "fast_path_unavailable",
                service=client.meta.service_model.service_name,
                detail=problem,
                action="this service's calls go through aiobotocore",
            )
            return client
        connector = aiohttp.TCPConnector(limit=pool, ssl=ssl_context, ttl_dns_cache=60)
        http = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": "sms-worker aiohttp"},
                # Identity encoding: DynamoDB's CRC32 covers the bytes as sent, and small
                # JSON answers gain nothing from gzip. No cookies: AWS APIs set none.
                skip_auto_headers=("Content-Type", "Accept-Encoding"),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        )
        api = json_client(
            client,
            http,
            credentials,
            read_timeout_s=read_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_attempts=max_attempts,
            proxy=proxy,
        )
        return adapter(api)

    return FastPath(
        sqs=await json_client_for(clients.sqs, SqsCalls, settings.wait_time_s + 10, 3),
        dynamodb=await json_client_for(clients.dynamodb, DynamoDBCalls, 10, 3),
        # One call per attempt: tenacity owns send retries (as with the aiobotocore client).
        sms=await json_client_for(clients.sms, SmsCalls, settings.send_timeout_s, 1),
    )
