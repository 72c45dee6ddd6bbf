"""The worker's HTTP endpoint: ``/metrics`` (Prometheus text), ``/healthz``, ``/readyz``.

``/healthz`` answers 200 while the event loop turns (a heartbeat task stamps the time every
second; a stalled loop cannot answer, a wedged one answers 503). ``/readyz`` answers 200 only
when the worker has its clients and is receiving: not starting, not in an account-wide
cool-down, not shutting down, and no dependency (DynamoDB, SQS, the SMS API) failing for
longer than ``dependency_unready_s``; it comes back by itself once the dependency answers.
Orchestrators restart on the first and route/scale on the second.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from worker.aws.clients import ConfigurationError
from worker.health import DEPENDENCIES, DependencyHealth
from worker.logs import get_logger
from worker.masking import mask_identity
from worker.metrics import Metrics
from worker.model.channels import operations
from worker.sending.cooldown import Cooldown
from worker.sending.limiter import Limiter

log = get_logger(__name__)
HEARTBEAT_STALE_S = 10.0
_SEND_OPERATIONS = " and ".join(operations())  # the metrics' help text: "SendMediaMessage"
IDENTITY_SERIES_MAX = 50  # the most recently used identities get a series each


def identity_label(identity: str) -> str:
    """An ``identity`` label that is unique but not personal: a phone number is masked to its
    country code and last two digits, so a short stable hash tells two of them apart
    (``+1***00#3f9c``); 16 bits of a hash cannot be turned back into a number."""
    masked = mask_identity(identity)
    if masked == identity:
        return identity
    return f"{masked}#{hashlib.blake2s(identity.encode(), digest_size=2).hexdigest()}"


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


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(
            f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in labels.items()
        )
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


def render(o: Observed) -> str:
    """The Prometheus text exposition of the worker's state."""
    m = o.metrics
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[str]) -> None:
        out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples])

    outcomes = [
        _line("sms_worker_requests_total", m.sent, {"outcome": "sent", "error_code": ""}),
        _line("sms_worker_requests_total", m.expired, {"outcome": "expired", "error_code": ""}),
        _line(
            "sms_worker_requests_total", m.duplicates, {"outcome": "duplicate", "error_code": ""}
        ),
    ]
    outcomes += [
        _line("sms_worker_requests_total", n, {"outcome": "failed", "error_code": code})
        for code, n in sorted(m.failed.items())
    ]
    outcomes += [
        _line("sms_worker_requests_total", n, {"outcome": "retrying", "error_code": code})
        for code, n in sorted(m.retrying.items())
    ]
    family(
        "sms_worker_requests_total",
        "counter",
        "Requests by outcome (and error code for failed/retrying).",
        outcomes,
    )
    for name, value, help_text in (
        ("sms_worker_send_calls_total", m.send_calls, f"{_SEND_OPERATIONS} calls made."),
        ("sms_worker_send_retries_total", m.send_retries, "In-process send retries."),
        ("sms_worker_throttled_total", m.throttled, "Calls answered ThrottlingException."),
        ("sms_worker_messages_received_total", m.received, "SQS messages received."),
        ("sms_worker_messages_deleted_total", m.deleted, "SQS messages deleted."),
        (
            "sms_worker_messages_released_total",
            m.released,
            "SQS visibility changes made (hand-backs, delays, extensions).",
        ),
        (
            "sms_worker_deferred_total",
            m.deferred,
            "Messages handed back because their identity was booked too far ahead.",
        ),
        (
            "sms_worker_lease_busy_total",
            m.lease_busy,
            "Deliveries left alone because another worker held the claim.",
        ),
        ("sms_worker_cooldowns_total", o.cooldown.started_total, "Account-wide cool-downs."),
        (
            "sms_worker_store_errors_total",
            m.store_errors,
            "Status writes DynamoDB did not take (the message was handed back).",
        ),
        (
            "sms_worker_kept_last_receive_total",
            m.kept_last_receive,
            "Hand-backs retried in the task because it was the queue's last allowed receive.",
        ),
        (
            "sms_worker_sent_abandoned_total",
            m.sent_abandoned,
            "SENT records still held by a DynamoDB fault at the shutdown's hard deadline.",
        ),
        (
            "sms_worker_unsettled_total",
            m.unsettled,
            "Messages the handlers' backstop had to hand back (0 unless there is a bug).",
        ),
    ):
        family(name, "counter", help_text, [_line(name, value)])
    family(
        "sms_worker_dependency_errors_total",
        "counter",
        "Calls a dependency did not answer usefully (connection, timeout, 5xx, throttling).",
        [
            _line("sms_worker_dependency_errors_total", o.health.errors_total(d), {"dependency": d})
            for d in DEPENDENCIES
        ],
    )
    family(
        "sms_worker_dependency_failing_seconds",
        "gauge",
        "How long a dependency has been failing (0 when it answers).",
        [
            _line(
                "sms_worker_dependency_failing_seconds",
                round(o.health.failing_for_s(d), 3),
                {"dependency": d},
            )
            for d in DEPENDENCIES
        ],
    )
    family(
        "sms_worker_in_flight",
        "gauge",
        "Messages held now.",
        [_line("sms_worker_in_flight", m.in_flight)],
    )
    family(
        "sms_worker_cooldown_active",
        "gauge",
        "1 while sending is paused after an account-wide error.",
        [_line("sms_worker_cooldown_active", 1 if o.cooldown.active else 0)],
    )
    family(
        "sms_worker_identity_rate_mps",
        "gauge",
        "Current send rate allowed per origination identity (after throttling).",
        [
            _line("sms_worker_identity_rate_mps", round(b.rate_mps, 3), {"identity": label})
            for label, b in sorted(
                (identity_label(i), b) for i, b in o.limiter.most_recent(IDENTITY_SERIES_MAX)
            )
        ],
    )
    h = m.send_latency_s
    buckets, running = [], 0
    for bound, count in zip((*h.bounds, float("inf")), h.counts, strict=True):
        running += count
        le = "+Inf" if bound == float("inf") else repr(bound)
        buckets.append(_line("sms_worker_send_latency_seconds_bucket", running, {"le": le}))
    buckets += [
        _line("sms_worker_send_latency_seconds_sum", round(h.total, 6)),
        _line("sms_worker_send_latency_seconds_count", h.count),
    ]
    family(
        "sms_worker_send_latency_seconds", "histogram", f"{_SEND_OPERATIONS} call latency.", buckets
    )
    return "\n".join(out) + "\n"


class ObserveServer:
    """Serves the endpoint on ``host:port``; ``port`` 0 in the settings disables it."""

    def __init__(
        self, observed: Observed, host: str, port: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._o = observed
        self._host, self._port = host, port
        self._clock = clock
        self._beat = clock()
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
            text=render(self._o),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Format": "prometheus-0.0.4"},
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        age = self._clock() - self._beat
        ok = age < HEARTBEAT_STALE_S
        return _json({"ok": ok, "heartbeat_age_s": round(age, 3)}, 200 if ok else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        reasons = []
        if not self._o.ready.is_set():
            reasons.append("starting")
        if self._o.stopping.is_set():
            reasons.append("shutting_down")
        if self._o.cooldown.active:
            reasons.append(f"cooldown:{self._o.cooldown.reason}")
        reasons += self._o.health.unready(self._o.dependency_unready_s)
        return _json({"ready": not reasons, "reasons": reasons}, 503 if reasons else 200)


def _json(body: dict[str, object], status: int) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")
