"""The aiohttp application: the AWS JSON 1.0 endpoint on ``POST /`` and the admin API.

The admin API lives under ``/_sandbox/`` so botocore (which only POSTs to ``/``) never
reaches it. It speaks plain JSON; errors are ``{"error": "..."}`` with status 400.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from worker.devstack.faultproxy import reset_connection
from worker.sandbox import errors
from worker.sandbox.config import config_from_json, config_to_json
from worker.sandbox.state import AnswerCut, SandboxState

STATE_KEY = web.AppKey("sandbox_state", SandboxState)
AMZ_JSON = "application/x-amz-json-1.0"


def _aws_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=AMZ_JSON,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


async def handle_api(request: web.Request) -> web.Response:
    """One AWS JSON 1.0 call: decide now, then answer after the configured latency."""
    state = request.app[STATE_KEY]
    counters = state.counters
    counters.in_flight += 1
    counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
    try:
        raw = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        cut = False
        try:
            status, body = 200, state.handle(target, raw)
        except errors.ApiError as exc:
            status, body = exc.status, exc.body()
        except AnswerCut:
            status, body, cut = 200, {}, True
        delay = state.latency_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if cut:  # the send went out; the caller never hears of it
            reset_connection(request)
            raise web.HTTPInternalServerError  # never sent: the transport is gone
        return _aws_response(status, body)
    finally:
        state.counters.in_flight = max(0, state.counters.in_flight - 1)


def _admin_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def handle_health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def handle_sends(request: web.Request) -> web.Response:
    """``?since=N`` skips the first N sends; ``?limit=M`` returns at most M."""
    state = request.app[STATE_KEY]
    try:
        since = int(request.query.get("since", "0"))
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        return _admin_error("since and limit must be integers")
    if since < 0 or (limit is not None and limit < 0):
        return _admin_error("since and limit must be >= 0")
    chosen = state.sends[since:] if limit is None else state.sends[since : since + limit]
    return web.json_response({"sends": [s.to_json() for s in chosen], "next": since + len(chosen)})


async def handle_stats(request: web.Request) -> web.Response:
    """The counters, and ``events``: what the delivery-event publisher did."""
    state = request.app[STATE_KEY]
    return web.json_response({**state.counters.to_json(), "events": state.events.stats_json()})


async def handle_get_config(request: web.Request) -> web.Response:
    return web.json_response(config_to_json(request.app[STATE_KEY].config))


async def handle_post_config(request: web.Request) -> web.Response:
    """Apply a partial config object; answers the whole new config."""
    state = request.app[STATE_KEY]
    try:
        patch = json.loads(await request.read() or b"{}")
        config = config_from_json(patch, state.config)
    except ValueError as exc:
        return _admin_error(str(exc))
    state.update_config(config)
    return web.json_response(config_to_json(config))


async def handle_reset(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.reset()
    return web.json_response({"ok": True})


def build_app(state: SandboxState) -> web.Application:
    """The sandbox application serving ``state``."""
    app = web.Application()
    app[STATE_KEY] = state
    app.router.add_post("/", handle_api)
    app.router.add_get("/_sandbox/health", handle_health)
    app.router.add_get("/_sandbox/sends", handle_sends)
    app.router.add_get("/_sandbox/stats", handle_stats)
    app.router.add_get("/_sandbox/config", handle_get_config)
    app.router.add_post("/_sandbox/config", handle_post_config)
    app.router.add_post("/_sandbox/reset", handle_reset)
    app.on_cleanup.append(_close_events)
    return app


async def _close_events(app: web.Application) -> None:
    """On shutdown, publish the delivery events still waiting, then stop the publisher."""
    await app[STATE_KEY].events.close()
