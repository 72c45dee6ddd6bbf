"""``/metrics`` on ``prometheus_client``: one registry per worker, read at scrape time.

The hot path only increments integers in :class:`worker.metrics.Metrics` and
:class:`worker.health.DependencyHealth`; :class:`WorkerCollector` turns them into metric
families when Prometheus scrapes, so a message costs no ``prometheus_client`` call. Each
worker has its own :class:`CollectorRegistry` (not the library's global one), so several
workers in one process (the tests) each export their own figures. The registry also carries
the process collector (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ...)
and the platform and GC collectors (``python_info``, ``python_gc_*``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.health import DEPENDENCIES
from worker.masking import mask_identity
from worker.metrics import Histogram
from worker.model.channels import CHANNELS, operations

if TYPE_CHECKING:
    from worker.observe.http import Observed

_SEND_OPERATIONS = " and ".join(operations())  # the help text: "SendMediaMessage"
IDENTITY_SERIES_MAX = 50  # the most recently used identities get a series each

# name (without _total), help, the Metrics attribute it reads
_COUNTERS = (
    ("sms_worker_send_calls", f"{_SEND_OPERATIONS} calls made.", "send_calls"),
    ("sms_worker_send_retries", "In-process send retries.", "send_retries"),
    ("sms_worker_throttled", "Calls answered ThrottlingException.", "throttled"),
    ("sms_worker_messages_received", "SQS messages received.", "received"),
    ("sms_worker_messages_deleted", "SQS messages deleted.", "deleted"),
    ("sms_worker_receive_calls", "ReceiveMessage calls answered.", "receive_calls"),
    (
        "sms_worker_receive_waits",
        "Times a poller waited because sends were booked more than hold_ahead_s ahead.",
        "receive_waits",
    ),
    (
        "sms_worker_ack_calls",
        "DeleteMessageBatch and ChangeMessageVisibilityBatch calls answered.",
        "ack_calls",
    ),
    (
        "sms_worker_messages_released",
        "SQS visibility changes made (hand-backs, delays, extensions).",
        "released",
    ),
    (
        "sms_worker_deferred",
        "Messages handed back because their identity was booked too far ahead.",
        "deferred",
    ),
    (
        "sms_worker_channel_paused_handbacks",
        "Messages handed back because their channel was paused (its spend limit reached).",
        "channel_paused",
    ),
    (
        "sms_worker_lease_busy",
        "Deliveries left alone because another worker held the claim.",
        "lease_busy",
    ),
    (
        "sms_worker_store_errors",
        "Status writes DynamoDB did not take (the message was handed back).",
        "store_errors",
    ),
    (
        "sms_worker_kept_last_receive",
        "Hand-backs retried in the task because it was the queue's last allowed receive.",
        "kept_last_receive",
    ),
    (
        "sms_worker_sent_abandoned",
        "SENT records still held by a DynamoDB fault at the shutdown's hard deadline.",
        "sent_abandoned",
    ),
    (
        "sms_worker_unsettled",
        "Messages the handlers' backstop had to hand back (0 unless there is a bug).",
        "unsettled",
    ),
)


def identity_label(identity: str, digest_size: int = 2) -> str:
    """An ``identity`` label that is unique but not personal: a phone number is masked to its
    country code and last two digits, so a short stable hash tells two of them apart
    (``+1***00#3f9c``); 16 bits of a hash cannot be turned back into a number."""
    masked = mask_identity(identity)
    if masked == identity:
        return identity
    digest = hashlib.blake2s(identity.encode(), digest_size=digest_size).hexdigest()
    return f"{masked}#{digest}"


def identity_labels(identities: Iterable[str]) -> dict[str, str]:
    """A label per identity, each one distinct: when two short labels collide (two numbers
    with the same country code, last digits and 16-bit hash) the later ones, in sorted
    order, get a longer hash, so no series is ever lost to a duplicate."""
    labels: dict[str, str] = {}
    used: set[str] = set()
    for identity in sorted(identities):
        label, size = identity_label(identity), 2
        while label in used and size < 32:
            size *= 2
            label = identity_label(identity, size)
        used.add(label)
        labels[identity] = label
    return labels


def build_registry(observed: Observed) -> CollectorRegistry:
    """A registry of this worker's own: its collector and the process ones."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(observed))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class WorkerCollector(Collector):
    """The worker's figures as metric families, built at each scrape."""

    def __init__(self, observed: Observed) -> None:
        self._o = observed

    def collect(self) -> Iterator[Metric]:
        yield from self._outcomes()
        yield from self._dependencies()
        yield from self._state()
        yield from self._sharing()
        yield from self._queues()
        yield self._latency()
        yield from self._events()

    def _outcomes(self) -> Iterator[Metric]:
        m = self._o.metrics
        requests = CounterMetricFamily(
            "sms_worker_requests",
            "Requests by outcome (and error code for failed/retrying).",
            labels=["outcome", "error_code"],
        )
        requests.add_metric(["sent", ""], m.sent)
        requests.add_metric(["expired", ""], m.expired)
        requests.add_metric(["duplicate", ""], m.duplicates)
        for code, n in sorted(m.failed.items()):
            requests.add_metric(["failed", code], n)
        for code, n in sorted(m.retrying.items()):
            requests.add_metric(["retrying", code], n)
        yield requests
        for name, help_text, attribute in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(m, attribute))
        yield CounterMetricFamily(
            "sms_worker_cooldowns", "Account-wide cool-downs.", value=self._o.cooldown.started_total
        )
        yield _by_label(
            "sms_worker_sent_by_channel",
            "Requests SENT, by channel.",
            "channel",
            {channel: m.sent_by_channel[channel] for channel in CHANNELS},
        )
        yield _by_label(
            "sms_worker_message_parts",
            "Message parts of the requests SENT, by channel (an SMS's segments; an MMS is 1).",
            "channel",
            {channel: m.parts_by_channel[channel] for channel in CHANNELS},
        )
        yield _by_label(
            "sms_worker_channel_pauses",
            "Times a channel was paused because its monthly spend limit was reached.",
            "channel",
            self._o.cooldown.channels.started_total(),
        )

    def _dependencies(self) -> Iterator[Metric]:
        health = self._o.health
        errors = CounterMetricFamily(
            "sms_worker_dependency_errors",
            "Calls a dependency did not answer usefully (connection, timeout, 5xx, throttling).",
            labels=["dependency"],
        )
        failing = GaugeMetricFamily(
            "sms_worker_dependency_failing_seconds",
            "How long a dependency has been failing (0 when it answers).",
            labels=["dependency"],
        )
        for d in DEPENDENCIES:
            errors.add_metric([d], health.errors_total(d))
            failing.add_metric([d], round(health.failing_for_s(d), 3))
        yield errors
        yield failing
        failures = CounterMetricFamily(
            "sms_worker_dependency_failures",
            "Failed calls by dependency (sqs, dynamodb, sms), operation (receive, delete, "
            "change_visibility, claim, record, record_sent, get, send, get_queue_attributes) "
            "and error code (the API's, else the exception class); DynamoDB's refused "
            "conditions are answers, not failures.",
            labels=["dependency", "operation", "code"],
        )
        for (dependency, operation, code), n in sorted(health.failures.items()):
            failures.add_metric([dependency, operation, code], n)
        yield failures

    def _state(self) -> Iterator[Metric]:
        o = self._o
        yield GaugeMetricFamily("sms_worker_in_flight", "Messages held now.", o.metrics.in_flight)
        yield GaugeMetricFamily(
            "sms_worker_ready",
            "1 while /readyz answers 200 (started, receiving, no long dependency failure).",
            0 if o.unready_reasons() else 1,
        )
        yield GaugeMetricFamily(
            "sms_worker_cooldown_active",
            "1 while sending is paused after an account-wide error.",
            1 if o.cooldown.active else 0,
        )
        paused = GaugeMetricFamily(
            "sms_worker_channel_paused",
            "1 while a channel is paused (its monthly spend limit reached), with the Reason.",
            labels=["channel", "reason"],
        )
        for channel, reason in o.cooldown.channels.paused().items():
            paused.add_metric([channel, reason], 1)
        yield paused
        rates = GaugeMetricFamily(
            "sms_worker_identity_rate_mps",
            "Current send rate allowed per origination identity (after throttling), for the "
            f"{IDENTITY_SERIES_MAX} most recently used.",
            labels=["identity"],
        )
        recent = list(o.limiter.most_recent(IDENTITY_SERIES_MAX))
        labels = identity_labels(i for i, _ in recent)
        for label, bucket in sorted((labels[i], b) for i, b in recent):
            rates.add_metric([label], round(bucket.rate_mps, 3))
        yield rates

    def _sharing(self) -> Iterator[Metric]:
        view = self._o.limiter.sharing()
        if view is None:
            return  # SMS_WORKER_RATE_SHARING=none: each worker has the whole quota
        families = {
            "quota": GaugeMetricFamily(
                "sms_worker_rate_quota_mps",
                "Configured quota per rate-limit key (SMS_WORKER_RATE_LIMITS): the whole fleet's.",
                labels=["identity"],
            ),
            "share": GaugeMetricFamily(
                "sms_worker_rate_share_mps",
                "This worker's share of the key's quota now (its lease's grant, or the "
                "fallback share).",
                labels=["identity"],
            ),
            "shared": GaugeMetricFamily(
                "sms_worker_rate_shared_mps",
                "The fleet's rate for the key after throttles (recovers to the quota).",
                labels=["identity"],
            ),
            "workers": GaugeMetricFamily(
                "sms_worker_rate_share_workers",
                "Workers holding a live lease on the key at this worker's last renewal.",
                labels=["identity"],
            ),
            "fallback": GaugeMetricFamily(
                "sms_worker_rate_sharing_fallback",
                "1 while the key is paced at the fallback share (the table not answering).",
                labels=["identity"],
            ),
        }
        shares = sorted(view.keys, key=lambda k: k.key)[:IDENTITY_SERIES_MAX]
        labels = identity_labels(k.key for k in shares)
        for k in shares:
            label = [labels[k.key]]
            families["quota"].add_metric(label, k.quota_mps)
            families["share"].add_metric(label, round(k.share_mps, 3))
            families["shared"].add_metric(label, round(k.shared_rate_mps, 3))
            families["workers"].add_metric(label, k.live_workers)
            families["fallback"].add_metric(label, 1 if k.fallback else 0)
        yield from families.values()
        yield CounterMetricFamily(
            "sms_worker_rate_share_writes",
            "Rate-share lease writes (renewals, releases, shared decreases): rate() is the "
            "bookings per second; divided by sends, the limiter's DynamoDB calls per message.",
            value=view.writes_total,
        )
        yield CounterMetricFamily(
            "sms_worker_rate_share_refused",
            "Lease writes refused by their condition (another worker wrote first; read again).",
            value=view.refused_total,
        )

    def _queues(self) -> Iterator[Metric]:
        sampler = self._o.queues
        if sampler is None:
            return
        depth = GaugeMetricFamily(
            "sms_worker_queue_messages",
            "Approximate messages in the queue (queue=main) and its dead-letter queue "
            "(queue=dlq) by state (visible, not_visible, delayed), from GetQueueAttributes "
            "sampled every few seconds.",
            labels=["queue", "state"],
        )
        for (queue, state), n in sorted(sampler.depth.items()):
            depth.add_metric([queue, state], n)
        yield depth
        yield GaugeMetricFamily(
            "sms_worker_queue_oldest_message_age_seconds",
            "Age (now - SentTimestamp) of the oldest message this worker held at the last "
            "sample, 0 when it held none: the worker's view of the queue's oldest message "
            "(CloudWatch's ApproximateAgeOfOldestMessage is the queue's own).",
            round(sampler.oldest_age_s, 3),
        )
        yield GaugeMetricFamily(
            "sms_worker_queue_sampled_timestamp_seconds",
            "When the queue figures were last sampled in full (Unix time; 0: never).",
            round(sampler.sampled_at or 0.0, 3),
        )

    def _events(self) -> Iterator[Metric]:
        m = self._o.metrics
        yield _by_label(
            "sms_worker_delivery_events",
            "Delivery events received, by eventType (TEXT_DELIVERED, MEDIA_SPAM, ...; "
            "'none' for a body with no known type).",
            "event_type",
            dict(sorted(m.events.items())),
        )
        yield _by_label(
            "sms_worker_delivery_event_outcomes",
            "What applying a delivery event did: applied, proven (made a record SENT), stale "
            "(duplicate or outranked), record_missing (retried), record_missing_gave_up, "
            "not_ours, malformed, store_unavailable.",
            "outcome",
            dict(sorted(m.event_outcomes.items())),
        )
        yield _histogram(
            m.delivery_latency_s,
            "sms_worker_delivery_latency_seconds",
            "Time from the send (SentAt) to its DELIVERED event (eventTimestamp).",
        )

    def _latency(self) -> Metric:
        h = self._o.metrics.send_latency_s
        return _histogram(h, "sms_worker_send_latency_seconds", f"{_SEND_OPERATIONS} call latency.")


def _by_label(name: str, help_text: str, label: str, values: Mapping[str, int]) -> Metric:
    """A counter family with one sample per ``label`` value."""
    family = CounterMetricFamily(name, help_text, labels=[label])
    for value, n in values.items():
        family.add_metric([value], n)
    return family


def _histogram(h: Histogram, name: str, help_text: str) -> Metric:
    buckets, running = [], 0
    for bound, count in zip((*h.bounds, float("inf")), h.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=round(h.total, 6))
