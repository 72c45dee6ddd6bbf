"""A fault-injecting HTTP proxy for the local stack: put it in front of moto or the sandbox.

Point one service's endpoint (``AWS_ENDPOINT_URL_DYNAMODB``, ``_SQS`` or
``_PINPOINT_SMS_VOICE_V2``) at the proxy and it forwards every AWS JSON request unchanged,
until a fault is injected for a set time. The faults are what a dependency's bad minute looks
like on the wire:

==============  ==========================================================================
``reset``       every connection reset, no HTTP answer
``hold``        requests held unanswered until the fault ends (clients time out)
``5xx``         HTTP 500 in the service's own error shape (DynamoDB ``InternalServerError``,
                SQS ``InternalError`` by its query-compatible header, the SMS API's
                ``InternalServerException``)
``throttle``    the service's throttling error (``ProvisionedThroughputExceededException``,
                ``ThrottlingException``; SQS's query-compatible ``RequestThrottled``)
``unprocessed`` DynamoDB takes the batch and writes none of it: ``BatchWriteItem`` answered
                with every item in ``UnprocessedItems``
``cut``         forwarded (the upstream acts on it) but the answer is lost: the connection is
                reset instead, as a call cut after the request was written
==============  ==========================================================================

A fault lasts ``duration_s`` and touches every operation, or only those named (the
``X-Amz-Target`` header's operation: ``UpdateItem``, ``ReceiveMessage``, ``SendMediaMessage``),
and of those only the requests whose body contains ``containing`` if given (one kind of
``UpdateItem``: the worker's SENT records say ``SentAt``).
``seen``, ``faulted`` (by mode) and ``faulted_by_operation`` count what the proxy did.

Tests own it in-process (``async with FaultProxy(upstream) as proxy: proxy.inject(...)``);
``python -m worker.devstack.faultproxy --upstream URL`` runs it alone (a JSON ready line
``{"event": "faultproxy_ready", "url": ...}``), with ``POST /_faultproxy/inject
{"mode": ..., "duration_s": ..., "operations": [...]}``, ``POST /_faultproxy/clear`` and
``GET /_faultproxy/stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

MODES = ("reset", "hold", "5xx", "throttle", "unprocessed", "cut")
_BATCH_WRITES = frozenset({"BatchWriteItem"})
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
# The X-Amz-Target prefix of each service (``service=``), for requests that lack one.
SERVICES = {
    "dynamodb": "DynamoDB_20120810",
    "sqs": "AmazonSQS",
    "sms": "PinpointSMSVoiceV2",
}
# The throttling and the 5xx error each service answers, by the X-Amz-Target prefix: the
# ``__type`` and, for SQS (query-compatible), the ``x-amzn-query-error`` botocore reads.
_INTERNAL = {
    "DynamoDB_20120810": ("com.amazonaws.dynamodb.v20120810#InternalServerError", None),
    "AmazonSQS": ("com.amazonaws.sqs#InternalServerError", "InternalError;Receiver"),
    "PinpointSMSVoiceV2": ("InternalServerException", None),
}
_THROTTLE = {
    "DynamoDB_20120810": (
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        None,
    ),
    "AmazonSQS": ("com.amazonaws.sqs#RequestThrottled", "RequestThrottled;Sender"),
    "PinpointSMSVoiceV2": ("ThrottlingException", None),
}


@dataclass(frozen=True, slots=True)
class Fault:
    mode: str
    until: float  # time.monotonic()
    operations: frozenset[str] | None  # None: every operation
    containing: bytes | None = None  # None: every request of those operations

    def applies(self, operation: str, body: bytes, now: float) -> bool:
        return (
            now < self.until
            and (self.operations is None or operation in self.operations)
            and (self.containing is None or self.containing in body)
        )


class FaultProxy:
    """A reverse proxy to ``upstream`` on 127.0.0.1 (port 0: a free one)."""

    def __init__(
        self,
        upstream: str,
        *,
        service: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if service is not None and service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        self.upstream = upstream.rstrip("/")
        self.service = service
        self._host, self._port = host, port
        self._fault: Fault | None = None
        self._cleared = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""
        self.seen: Counter[str] = Counter()  # requests by operation
        self.faulted: Counter[str] = Counter()  # faulted requests by mode
        self.faulted_by_operation: Counter[str] = Counter()

    # -- control ---------------------------------------------------------------------------
    def inject(
        self,
        mode: str,
        duration_s: float,
        operations: set[str] | frozenset[str] | None = None,
        *,
        containing: bytes | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(MODES)}")
        if duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        if mode == "unprocessed" and self.service not in (None, "dynamodb"):
            raise ValueError("the unprocessed fault is DynamoDB's (BatchWriteItem)")
        ops = frozenset(operations) if operations is not None else None
        self._fault = Fault(mode, time.monotonic() + duration_s, ops, containing)
        self._cleared.clear()
        asyncio.get_running_loop().call_later(duration_s, self._expire, self._fault)

    def clear(self) -> None:
        self._fault = None
        self._cleared.set()

    def _expire(self, fault: Fault) -> None:
        if self._fault is fault:
            self.clear()

    def stats(self) -> dict[str, Any]:
        """What the proxy saw and did, by operation and by mode."""
        return {
            "active": self.active,
            "seen": dict(self.seen),
            "faulted": dict(self.faulted),
            "faulted_by_operation": dict(self.faulted_by_operation),
        }

    @property
    def active(self) -> str | None:
        fault = self._fault
        return fault.mode if fault is not None and time.monotonic() < fault.until else None

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> FaultProxy:
        self._http = aiohttp.ClientSession(
            auto_decompress=False,
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/_faultproxy/inject", self._admin_inject)
        app.router.add_post("/_faultproxy/clear", self._admin_clear)
        app.router.add_get("/_faultproxy/stats", self._admin_stats)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self._port
        self.url = f"http://{self._host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the proxy -------------------------------------------------------------------------
    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, operation = target.partition(".")
        operation = operation or request.method
        prefix = prefix or SERVICES.get(self.service or "", "")
        self.seen[operation] += 1
        body = await request.read()
        fault = self._fault
        mode = (
            fault.mode
            if fault is not None and fault.applies(operation, body, time.monotonic())
            else None
        )
        if mode == "unprocessed" and operation not in _BATCH_WRITES:
            mode = None
        if mode is not None:
            self.faulted[mode] += 1
            self.faulted_by_operation[operation] += 1
        if mode == "reset":
            reset_connection(request)
            raise web.HTTPInternalServerError  # never sent: the transport is gone
        if mode == "hold":
            await self._cleared.wait()
            reset_connection(request)
            raise web.HTTPInternalServerError
        if mode == "5xx":
            error_type, query_error = _INTERNAL.get(prefix, ("InternalServerError", None))
            return _error(500, error_type, query_error)
        if mode == "throttle":
            error_type, query_error = _THROTTLE.get(prefix, ("ThrottlingException", None))
            return _error(400, error_type, query_error)
        if mode == "unprocessed":
            items = json.loads(body or b"{}").get("RequestItems", {})
            answer = json.dumps({"UnprocessedItems": items}).encode()
            return web.Response(body=answer, status=200, content_type="application/x-amz-json-1.0")
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = self.upstream + request.rel_url.path_qs
        async with self._http.request(request.method, url, data=body, headers=headers) as up:
            answer = await up.read()
            if mode == "cut":
                reset_connection(request)  # the upstream acted on it; the caller never hears
                raise web.HTTPInternalServerError
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(body=answer, status=up.status, headers=out_headers)

    async def _admin_inject(self, request: web.Request) -> web.Response:
        try:
            spec: dict[str, Any] = await request.json()
            operations = spec.get("operations")
            self.inject(
                str(spec["mode"]),
                float(spec["duration_s"]),
                {str(op) for op in operations} if operations else None,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response({"mode": spec["mode"], "duration_s": spec["duration_s"]})

    async def _admin_clear(self, request: web.Request) -> web.Response:
        self.clear()
        return web.json_response(self.stats())

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())


def reset_connection(request: web.Request) -> None:
    """Abort the client's connection with an RST (SO_LINGER 0), as a failing network does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _error(status: int, error_type: str, query_error: str | None) -> web.Response:
    headers = {"x-amzn-RequestId": "faultproxy"}
    if query_error is not None:
        headers["x-amzn-query-error"] = query_error
    body = json.dumps({"__type": error_type, "message": "injected by the fault proxy"})
    return web.Response(
        text=body, status=status, headers=headers, content_type="application/x-amz-json-1.0"
    )


async def _serve(upstream: str, port: int, service: str | None) -> None:
    async with FaultProxy(upstream, service=service, port=port) as proxy:
        print(json.dumps({"event": "faultproxy_ready", "url": proxy.url}), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m worker.devstack.faultproxy", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--upstream", required=True, help="URL of the server to front")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument(
        "--service", choices=sorted(SERVICES), help="the upstream's service (default: by header)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.upstream, args.port, args.service))


if __name__ == "__main__":
    main()
