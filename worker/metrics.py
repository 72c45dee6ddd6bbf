"""In-process counters: the figures behind the progress log, the summary and /metrics."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

# Send-call latency histogram bounds, in seconds (Prometheus convention).
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Delivery latency (send -> DELIVERED event) bounds, in seconds: seconds to the 72 hours after
# which the service reports UNKNOWN.
DELIVERY_BUCKETS_S = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0, 259_200.0)


@dataclass
class Histogram:
    bounds: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


@dataclass
class Metrics:
    received: int = 0
    receive_calls: int = 0  # ReceiveMessage calls answered (received / this: the batching)
    receive_waits: int = 0  # a poller waited: sends booked more than hold_ahead_s ahead
    deleted: int = 0
    ack_calls: int = 0  # DeleteMessageBatch and ChangeMessageVisibilityBatch calls answered
    released: int = 0
    sent: int = 0
    duplicates: int = 0
    expired: int = 0
    retrying: Counter[str] = field(default_factory=Counter)  # by ErrorCode
    lease_busy: int = 0
    deferred: int = 0
    channel_paused: int = 0  # hand-backs because the request's channel was paused
    send_calls: int = 0
    send_retries: int = 0
    throttled: int = 0
    in_flight: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by ErrorCode
    store_errors: int = 0  # status writes DynamoDB did not take (the message handed back)
    kept_last_receive: int = 0  # hand-backs retried in the task on the last allowed receive
    sent_abandoned: int = 0  # SENT records still held at the shutdown's hard deadline
    unsettled: int = 0  # messages the backstop had to hand back (always 0 unless a bug)
    send_latency_s: Histogram = field(default_factory=Histogram)
    sent_by_channel: Counter[str] = field(default_factory=Counter)  # SENT requests
    parts_by_channel: Counter[str] = field(default_factory=Counter)  # their message parts
    # Delivery events: by eventType as received, and by what applying them did (applied,
    # proven, stale, record_missing, record_missing_gave_up, not_ours, malformed, ...).
    events: Counter[str] = field(default_factory=Counter)
    event_outcomes: Counter[str] = field(default_factory=Counter)
    delivery_latency_s: Histogram = field(
        default_factory=lambda: Histogram(DELIVERY_BUCKETS_S, [0] * (len(DELIVERY_BUCKETS_S) + 1))
    )

    def snapshot(self) -> dict[str, object]:
        return {
            "received": self.received,
            "receive_calls": self.receive_calls,
            "receive_waits": self.receive_waits,
            "sent": self.sent,
            "failed": sum(self.failed.values()),
            "retrying": sum(self.retrying.values()),
            "expired": self.expired,
            "duplicates": self.duplicates,
            "deferred": self.deferred,
            "send_calls": self.send_calls,
            "throttled": self.throttled,
            "deleted": self.deleted,
            "ack_calls": self.ack_calls,
            "released": self.released,
            "in_flight": self.in_flight,
            "events": sum(self.events.values()),
        }
