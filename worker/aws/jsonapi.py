"""A small client for AWS JSON-protocol APIs (DynamoDB, SQS, End User Messaging SMS).

botocore spends about 1.4 ms of CPU on every call (event hooks, model-driven serialising and
parsing, endpoint rules, ``AWSRequest`` signing); the hot path makes a few calls per message,
so that was most of the worker's CPU. This client makes the same HTTP request (the target
header, the JSON body, a SigV4 signature, see :mod:`worker.aws.sigv4`) straight over aiohttp.
Everything it needs comes from the aiobotocore client it stands in for: the endpoint (after
endpoint resolution and ``AWS_ENDPOINT_URL*`` overrides), the region, the signing name, the
target prefix and the credentials (refreshed by botocore's provider chain).

Errors come back as botocore's ``ClientError``, parsed by botocore's own JSON parser and service
model (``Error.Code`` from ``__type`` or the query-compatible header, a modelled error's fields
at the top level, ``ResponseMetadata.HTTPStatusCode``), so callers classify them the same either
way; transport failures raise the botocore exceptions aiobotocore raises. Retries are
botocore's *standard* mode, decided by botocore's own retry objects (see
:mod:`worker.aws.retries`): the same attempts, backoff and retry quota as aiobotocore's.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import aiohttp
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import JSONParser
from yarl import URL

from worker.aws.retries import CRC_MISMATCH, StandardRetries
from worker.aws.sigv4 import Credentials, SigV4Signer, canonical_host

# What aiobotocore raises for a failed exchange (see ``_post``), all retried.
_TRANSPORT_ERRORS = (HTTPClientError, BotoConnectionError)


class JsonApiClient:
    """POSTs one service's operations; ``await call("UpdateItem", params)`` returns the
    response as botocore would for these APIs (JSON as it came, without ResponseMetadata)."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        endpoint_url: str,
        region: str,
        signing_name: str,
        target_prefix: str,
        json_version: str,
        credentials: Any,
        service_model: Any,
        read_timeout_s: float,
        connect_timeout_s: float,
        max_attempts: int,
        query_compatible: bool = False,
        check_crc32: bool = False,
        proxy: str | None = None,
    ) -> None:
        problem = endpoint_problem(endpoint_url)
        if problem:
            raise ValueError(problem)
        url = URL(endpoint_url)
        self._http = http
        self._url = url.with_path("/")
        # The proxy botocore would use (see fastpath.proxy_route), with its credentials.
        self._proxy = URL(proxy) if proxy else None
        self._host = canonical_host(url.scheme, url.host or "", url.explicit_port)
        self._signer = SigV4Signer(region, signing_name)
        self._prefix = target_prefix
        self._content_type = f"application/x-amz-json-{json_version}"
        self._query_compatible = query_compatible
        self._credentials = credentials
        self._service_model = service_model
        self._parser = JSONParser()
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._check_crc32 = check_crc32
        self.retries = StandardRetries(service_model, max(1, max_attempts))

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode()
        context: dict[str, Any] = {}
        attempt = 1
        while True:
            try:
                result = await self._once(operation, body, attempt)
            except ClientError as exc:
                decision = self.retries.decide(
                    attempt=attempt,
                    operation_model=self._service_model.operation_model(operation),
                    request_context=context,
                    parsed=exc.response,
                    content=exc.content if isinstance(exc, _ServiceError) else b"",
                )
                error: Exception = exc
            except _TRANSPORT_ERRORS as exc:
                decision = self.retries.decide(
                    attempt=attempt,
                    operation_model=self._service_model.operation_model(operation),
                    request_context=context,
                    exception=exc,
                )
                error = exc
            else:
                self.retries.succeeded(context)
                return result
            if decision.delay_s > 0:
                await asyncio.sleep(decision.delay_s)
            if not decision.retry:
                raise error
            attempt += 1

    async def _frozen(self) -> Credentials:
        if self._credentials is None:
            raise NoCredentialsError()
        # botocore's ReadOnlyCredentials, refreshed by its provider when they near expiry.
        frozen: Credentials = await self._credentials.get_frozen_credentials()
        return frozen

    async def _once(self, operation: str, body: bytes, attempt: int) -> dict[str, Any]:
        headers = {
            "content-type": self._content_type,
            "x-amz-target": f"{self._prefix}.{operation}",
        }
        if self._query_compatible:
            headers["x-amzn-query-mode"] = "true"
        headers |= self._signer.sign(await self._frozen(), self._host, headers, body)
        raw, status, response_headers = await self._post(headers, body)
        if self._check_crc32 and "x-amz-crc32" in response_headers:
            expected = int(response_headers["x-amz-crc32"])
            if zlib.crc32(raw) & 0xFFFFFFFF != expected:
                error = {"Code": CRC_MISMATCH, "Message": "the response's CRC32 did not match"}
                raise _ServiceError(
                    _metadata({"Error": error}, status, _lower(response_headers), attempt),
                    operation,
                    raw,
                )
        if status < 300:
            parsed: dict[str, Any] = json.loads(raw) if raw else {}
            return parsed
        raise _ServiceError(
            self._error(operation, raw, status, response_headers, attempt), operation, raw
        )

    async def _post(self, headers: dict[str, str], body: bytes) -> tuple[bytes, int, Any]:
        """One exchange; a transport failure raises the botocore exception aiobotocore would
        (so records and logs name it the same way on either path)."""
        url = str(self._url)
        try:
            async with self._http.post(
                self._url, data=body, headers=headers, timeout=self._timeout, proxy=self._proxy
            ) as response:
                return await response.read(), response.status, response.headers
        except aiohttp.ClientSSLError as exc:
            raise SSLError(endpoint_url=url, error=exc) from exc
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            raise ProxyConnectionError(proxy_url="(proxy)", error=exc) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionClosedError(endpoint_url=url, error=exc) from exc
        except aiohttp.ServerTimeoutError as exc:
            if str(exc).lower().startswith("connect"):
                raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
            raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            # No connection was made: the request was never written.
            raise EndpointConnectionError(endpoint_url=url, error=exc) from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            # The connection was made, then lost (reset): the request may have been written
            # and acted on, as botocore says of a connection closed before the answer.
            raise ConnectionClosedError(endpoint_url=url, error=exc) from exc
        except TimeoutError as exc:
            raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except aiohttp.ClientError as exc:
            raise HTTPClientError(error=exc) from exc

    def _error(
        self, operation: str, raw: bytes, status: int, headers: Any, attempt: int
    ) -> dict[str, Any]:
        """The error as botocore parses it (errors are rare: exactness beats speed here)."""
        lower = _lower(headers)
        response = {"status_code": status, "headers": lower, "body": raw}
        model = self._service_model
        parsed: dict[str, Any] = self._parser.parse(
            response, model.operation_model(operation).output_shape
        )
        code = parsed.get("Error", {}).get("Code")
        error_shape = model.shape_for_error_code(code) if code else None
        if error_shape is not None:
            # A modelled error's members (DynamoDB's ``Item``, the SMS API's ``Reason``) at
            # the top level, as botocore's endpoint adds them.
            parsed.update(self._parser.parse(response, error_shape))
        return _metadata(parsed, status, lower, attempt)


class _ServiceError(ClientError):  # type: ignore[misc]  # botocore is untyped
    """A ``ClientError`` that keeps the answer's bytes, which botocore's retry checkers read
    (DynamoDB's CRC32 check); callers see and catch a plain ``ClientError``."""

    def __init__(self, response: dict[str, Any], operation: str, content: bytes) -> None:
        super().__init__(response, operation)
        self.content = content


def endpoint_problem(endpoint_url: str) -> str | None:
    """Why this client cannot serve ``endpoint_url`` (it posts to ``/``), or None."""
    url = URL(endpoint_url)
    if url.scheme not in ("http", "https") or not url.host:
        return f"endpoint {endpoint_url} is not an http(s) URL with a host"
    if url.path not in ("", "/") or url.query_string:
        return f"endpoint {endpoint_url} has a path; the JSON API client posts to /"
    return None


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _metadata(
    parsed: dict[str, Any], status: int, lower: dict[str, str], attempt: int
) -> dict[str, Any]:
    """``ResponseMetadata`` as botocore fills it (``lower``: the headers, lower-cased)."""
    metadata: dict[str, Any] = parsed.setdefault("ResponseMetadata", {})
    metadata |= {"HTTPStatusCode": status, "HTTPHeaders": lower, "RetryAttempts": attempt - 1}
    if "x-amzn-requestid" in lower:
        metadata["RequestId"] = lower["x-amzn-requestid"]
    return parsed
