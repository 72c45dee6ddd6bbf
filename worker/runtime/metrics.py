"""In-process counters: the figures behind the progress log, the summary and /metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    received: int = 0
    deleted: int = 0
    released: int = 0
    sent: int = 0
    dry_runs: int = 0
    duplicates: int = 0
    expired: int = 0
    retrying: int = 0
    lease_busy: int = 0
    deferred: int = 0
    send_calls: int = 0
    throttled: int = 0
    in_flight: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by ErrorCode
    send_latency_ms_total: float = 0.0

    def snapshot(self) -> dict[str, object]:
        return {
            "received": self.received,
            "sent": self.sent,
            "failed": sum(self.failed.values()),
            "retrying": self.retrying,
            "expired": self.expired,
            "duplicates": self.duplicates,
            "deferred": self.deferred,
            "send_calls": self.send_calls,
            "throttled": self.throttled,
            "deleted": self.deleted,
            "released": self.released,
            "in_flight": self.in_flight,
        }
