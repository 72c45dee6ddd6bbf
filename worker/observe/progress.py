"""The periodic progress log line: the send rate since the last line, the counters, the
identities' current rates (masked)."""

from __future__ import annotations

import json
import time

from worker.logs import get_logger
from worker.metrics import Metrics
from worker.observe.exposition import identity_labels
from worker.sending.cooldown import Cooldown
from worker.sending.limiter import Limiter

log = get_logger("worker.runtime.worker")

RATES_SHOWN = 20


class ProgressLine:
    def __init__(self, metrics: Metrics, cooldown: Cooldown, limiter: Limiter | None) -> None:
        self._metrics, self._cooldown, self._limiter = metrics, cooldown, limiter
        self._last = (0, time.monotonic())

    def __call__(self) -> None:
        now, sent = time.monotonic(), self._metrics.sent
        last_sent, last_t = self._last
        rates = self._limiter.most_recent(RATES_SHOWN) if self._limiter is not None else []
        labels = identity_labels(k for k, _ in rates)  # distinct even when two masks collide
        log.info(
            "progress",
            sends_per_s=round((sent - last_sent) / max(now - last_t, 1e-9), 2),
            cooldown=self._cooldown.reason,
            channels_paused=self._cooldown.channels.paused() or None,
            parts_by_channel=dict(self._metrics.parts_by_channel) or None,
            identity_rates=json.dumps({labels[k]: round(r.rate_mps, 2) for k, r in rates}),
            **self._metrics.snapshot(),
        )
        self._last = (sent, now)
