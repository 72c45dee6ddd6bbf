"""The worker's HTTP endpoint: ``/metrics`` (Prometheus text), ``/healthz``, ``/readyz``.

``/metrics`` is rendered by ``prometheus_client`` from the worker's own registry
(:mod:`worker.observe.exposition`), built once per server and read at each scrape.

``/healthz`` answers 200 while the event loop turns (a heartbeat task stamps the time every
second; a stalled loop cannot answer, a wedged one answers 503). ``/readyz`` answers 200 only
when the worker has its clients and is receiving: not starting, not in an account-wide
cool-down, not shutting down, no dependency (DynamoDB, SQS, the SMS API) failing for
longer than ``dependency_unready_s`` and no rate-limit key on the shared limiter's fallback
share for as long; it comes back by itself once the dependency answers.
Orchestrators restart on the first and route/scale on the second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from worker.aws.clients import ConfigurationError
from worker.health import DependencyHealth
from worker.logs import get_logger
from worker.metrics import Metrics
from worker.observe.exposition import build_registry
from worker.observe.queues import QueueSampler
from worker.sending.cooldown import Cooldown
from worker.sending.limiter import Limiter

log = get_logger(__name__)
HEARTBEAT_STALE_S = 10.0
__all__ = ["ObserveServer", "Observed"]


@dataclass
class Observed:
    """What the endpoint reads; the worker owns all of it."""

    metrics: Metrics
    limiter: Limiter
    cooldown: Cooldown
    ready: asyncio.Event
    stopping: asyncio.Event
    health: DependencyHealth
    dependency_unready_s: float = 30.0
    queues: QueueSampler | None = None

    def unready_reasons(self) -> list[str]:
        """Why ``/readyz`` answers 503 (none: ready)."""
        reasons = []
        if not self.ready.is_set():
            reasons.append("starting")
        if self.stopping.is_set():
            reasons.append("shutting_down")
        if self.cooldown.active:
            reasons.append(f"cooldown:{self.cooldown.reason}")
        sharing = self.limiter.sharing()  # on the fallback share as long as a dependency fails
        fallback = sharing.fallback_keys(self.dependency_unready_s) if sharing is not None else 0
        if fallback:
            reasons.append(f"rate_sharing_fallback:keys={fallback}")
        for channel, why in self.cooldown.channels.paused().items():
            reasons.append(f"channel_paused:{channel}:{why}")
        return reasons + self.health.unready(self.dependency_unready_s)


class ObserveServer:
    """Serves the endpoint on ``host:port``; ``port`` 0 in the settings disables it."""

    def __init__(
        self, observed: Observed, host: str, port: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._o = observed
        self._host, self._port = host, port
        self._clock = clock
        self._beat = clock()
        self._registry = build_registry(observed)
        self._runner: web.AppRunner | None = None
        self._heart: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def __aenter__(self) -> ObserveServer:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigurationError(
                f"cannot serve /metrics on {self._host}:{self._port}: {exc.strerror}; set "
                "SMS_WORKER_METRICS_PORT (--metrics-port) to a free port, or 0 to turn the "
                "endpoint off"
            ) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        self._heart = asyncio.create_task(self._heartbeat(), name="heartbeat")
        log.info(
            "http_listening", host=self._host, port=self.port, paths="/metrics /healthz /readyz"
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._heart is not None:
            self._heart.cancel()
            await asyncio.gather(self._heart, return_exceptions=True)
            self._heart = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _heartbeat(self) -> None:
        while True:
            self._beat = self._clock()
            await asyncio.sleep(1.0)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            # 0.0.4: what Prometheus 2.x asks for; every name here is a classic one
            body=generate_latest(self._registry),
            headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        age = self._clock() - self._beat
        ok = age < HEARTBEAT_STALE_S
        return _json({"ok": ok, "heartbeat_age_s": round(age, 3)}, 200 if ok else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        reasons = self._o.unready_reasons()
        return _json({"ready": not reasons, "reasons": reasons}, 503 if reasons else 200)


def _json(body: dict[str, object], status: int) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")
