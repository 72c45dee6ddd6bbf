"""Delivery events of the sandbox's accepted sends, published to SQS as the service does.

End User Messaging publishes a message's delivery events through its configuration set's
event destination; this module plays that part for the sandbox. For each accepted send (not a
dry run) :func:`plan_events` builds the events the service would publish, in order: ``QUEUED``
or ``PENDING``, then ``SUCCESSFUL`` (final: the carrier accepted it), then the carrier's
final event, ``DELIVERED`` or a failure (none for the ``accepted_only`` outcome). Their prefix
is the operation's (``TEXT_`` for SendTextMessage, ``MEDIA_`` for SendMediaMessage); the
fields are the service's (``messageId`` is the id the send returned, ``context`` the
request's ``Context``), the price follows from the message (its parts), not from chance.

:class:`EventPublisher` holds the planned events until they are due (``events_delay_ms`` ±
``events_jitter_ms`` after the send, spread over the message's events), wraps each in the
configured envelope (:func:`envelope`) and sends them with ``SendMessageBatch`` from a task of
its own, so a send never waits for SQS. Its queue is bounded (beyond ``max_pending`` events
are dropped and counted); publishing errors are counted and logged, never raised; closing it
publishes what is still waiting, delay or not.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import itertools
import json
import os
import random
import re
import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from worker.aws.clients import aws_client
from worker.lifecycle import BackgroundService
from worker.model import segments

if TYPE_CHECKING:
    from worker.sandbox.config import SandboxConfig
    from worker.sandbox.state import SendRecord

log = structlog.get_logger("worker.sandbox")

EVENT_VERSION = "1.0"
#: The event family of each send operation (the prefix of its event types).
EVENT_PREFIX: Mapping[str, str] = {"SendTextMessage": "TEXT", "SendMediaMessage": "MEDIA"}
#: EventBridge's ``detail-type`` of each family.
DETAIL_TYPE: Mapping[str, str] = {
    "TEXT": "Text Message Delivery Status Updated",
    "MEDIA": "Media Message Delivery Status Updated",
}
EVENTBRIDGE_SOURCE = "aws.sms-voice"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
TOPIC_NAME = "sms-voice-events"
SQS_MAX_BATCH = 10
MAX_PENDING = 100_000
MAX_BATCHES_IN_FLIGHT = 4
DRAIN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the carrier finally reports: ``status`` (the event type's suffix) or nothing."""

    status: str | None
    description: str
    media_only: bool = False


OUTCOMES: Mapping[str, Outcome] = {
    "delivered": Outcome("DELIVERED", "Message has been accepted by phone"),
    "accepted_only": Outcome(None, "Message has been accepted by phone carrier"),
    "blocked": Outcome("BLOCKED", "Message has been blocked by the recipient's device"),
    "carrier_blocked": Outcome("CARRIER_BLOCKED", "Message has been blocked by the carrier"),
    "spam": Outcome("SPAM", "Message has been blocked by the carrier as spam"),
    "unreachable": Outcome("UNREACHABLE", "Phone is unreachable"),
    "carrier_unreachable": Outcome("CARRIER_UNREACHABLE", "Carrier network is unreachable"),
    "ttl_expired": Outcome("TTL_EXPIRED", "Message was not delivered within its TTL"),
    "unknown": Outcome("UNKNOWN", "No final status was received from the carrier"),
    "invalid": Outcome("INVALID", "Destination phone number is not valid"),
    "protect_blocked": Outcome("PROTECT_BLOCKED", "Message was blocked by a protect configuration"),
    "media_file_inaccessible": Outcome(
        "MEDIA_FILE_INACCESSIBLE", "Media file could not be read", media_only=True
    ),
    "media_file_type_unsupported": Outcome(
        "MEDIA_FILE_TYPE_UNSUPPORTED", "Media file type is not supported", media_only=True
    ),
    "media_file_size_exceeded": Outcome(
        "MEDIA_FILE_SIZE_EXCEEDED", "Media file is larger than allowed", media_only=True
    ),
}
_FIRST = {
    "QUEUED": "Message has been queued for delivery",
    "PENDING": "Message is being delivered",
}
_SUCCESSFUL = "Message has been accepted by phone carrier"

#: (price, carrier fee) in USD per message part, by family: the sandbox's price list.
PRICE_PER_PART: Mapping[str, tuple[float, float]] = {
    "TEXT": (0.00581, 0.00302),
    "MEDIA": (0.0200, 0.0030),
}
#: Calling code -> (ISO country, MCC, MNC) of the destinations the sandbox knows.
_COUNTRIES = (
    ("+1", "US", "310", "800"),
    ("+44", "GB", "234", "15"),
    ("+61", "AU", "505", "01"),
    ("+49", "DE", "262", "01"),
    ("+33", "FR", "208", "01"),
)
_CARRIERS = ("Example Corp Mobile", "AnyCompany Wireless", "Example Telecom")


def event_prefix(operation: str) -> str | None:
    """``TEXT``/``MEDIA`` for a send operation; ``None`` for one that publishes no events."""
    return EVENT_PREFIX.get(operation)


def draw_outcome(weights: Mapping[str, float], prefix: str, rng: random.Random) -> str:
    """One outcome by weight; text sends never draw a media-only one (``delivered`` if only
    media outcomes have weight)."""
    names = [
        n for n, w in weights.items() if w > 0 and (prefix == "MEDIA" or not OUTCOMES[n].media_only)
    ]
    if not names:
        return "delivered"
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def message_encoding(body: str) -> str:
    """``GSM`` when every character is in the GSM 03.38 alphabet, else ``UCS2``."""
    return "GSM" if segments.is_gsm(body) else "UCS2"


def message_parts(prefix: str, body: str) -> int:
    """How many parts a body goes out in: one MMS, or the SMS segments the worker counts
    (:mod:`worker.model.segments`, one counter for the worker and the sandbox)."""
    return 1 if prefix == "MEDIA" else segments.parts(body)


def _country(destination: str) -> tuple[str, str, str] | None:
    best = max(
        (c for c in _COUNTRIES if destination.startswith(c[0])),
        key=lambda c: len(c[0]),
        default=None,
    )
    return None if best is None else best[1:]


def _carrier(destination: str) -> str:
    digest = hashlib.sha256(destination.encode()).digest()
    return _CARRIERS[digest[0] % len(_CARRIERS)]


def plan_events(
    record: SendRecord, operation: str, outcome: str, first: str = "QUEUED"
) -> list[dict[str, Any]]:
    """The events of one accepted send, in the order the service reports them. Their
    ``eventTimestamp`` is the send's time for now; :class:`EventPublisher` sets it."""
    prefix = event_prefix(operation)
    if prefix is None:
        return []
    params = record.params
    body = str(params.get("MessageBody") or "")
    parts = message_parts(prefix, body)
    price, fee = PRICE_PER_PART[prefix]
    request_ms = int(record.received_at * 1000)
    common: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "eventTimestamp": request_ms,
        "originationPhoneNumber": record.identity,
        "destinationPhoneNumber": record.destination,
        "carrierName": _carrier(record.destination),
        "messageId": record.message_id,
        "messageRequestTimestamp": request_ms,
        "messageEncoding": message_encoding(body),
        "messageType": str(params.get("MessageType") or "TRANSACTIONAL"),
        "totalMessageParts": parts,
        "totalMessagePrice": round(price * parts, 5),
        "totalCarrierFee": round(fee * parts, 5),
    }
    country = _country(record.destination)
    if country is not None:
        common["isoCountryCode"], common["mcc"], common["mnc"] = country
    if isinstance(params.get("Context"), dict):
        common["context"] = dict(params["Context"])
    final = OUTCOMES[outcome]
    stages = [(first, False, _FIRST[first]), ("SUCCESSFUL", True, _SUCCESSFUL)]
    if final.status is not None:
        stages.append((final.status, True, final.description))
    return [
        {
            # The media file failures are named in full (MEDIA_FILE_...), the rest per prefix.
            "eventType": status if status.startswith(f"{prefix}_") else f"{prefix}_{status}",
            "isFinal": is_final,
            "messageStatus": status,
            "messageStatusDescription": description,
            **common,
        }
        for status, is_final, description in stages
    ]


def _iso_ms(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def envelope(event: Mapping[str, Any], kind: str, *, region: str, account: str, now: float) -> str:
    """The SQS body that carries ``event``: itself (``raw``), an SNS notification (``sns``) or
    an EventBridge event (``eventbridge``)."""
    if kind == "raw":
        return json.dumps(event)
    if kind == "sns":
        topic = f"arn:aws:sns:{region}:{account}:{TOPIC_NAME}"
        return json.dumps(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": topic,
                "Message": json.dumps(event),
                "Timestamp": _iso_ms(now),
                "SignatureVersion": "1",
                "Signature": base64.b64encode(hashlib.sha256(os.urandom(16)).digest()).decode(),
                "SigningCertURL": (
                    f"https://sns.{region}.amazonaws.com/SimpleNotificationService-sandbox.pem"
                ),
                "UnsubscribeURL": (
                    f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
                    f"&SubscriptionArn={topic}:{uuid.uuid4()}"
                ),
            }
        )
    if kind == "eventbridge":
        family = str(event["eventType"]).split("_", 1)[0]
        return json.dumps(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": DETAIL_TYPE[family],
                "source": EVENTBRIDGE_SOURCE,
                "account": account,
                "time": _iso_ms(now)[:-5] + "Z",
                "region": region,
                "resources": [],
                "detail": dict(event),
            }
        )
    raise ValueError(f"unknown events envelope {kind!r}")


_SQS_HOST = re.compile(r"^https?://sqs\.([a-z0-9-]+)\.amazonaws\.com")
_ACCOUNT_PATH = re.compile(r"^https?://[^/]+/(\d{12})/")


def queue_region(queue_url: str) -> str:
    """The region of an SQS queue URL, else the configured one (``AWS_REGION``...)."""
    match = _SQS_HOST.match(queue_url)
    if match:
        return match.group(1)
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def queue_account(queue_url: str) -> str:
    match = _ACCOUNT_PATH.match(queue_url)
    return match.group(1) if match else DEFAULT_ACCOUNT


@dataclass(order=True, slots=True)
class _Due:
    due: float  # the clock's time at which to publish
    seq: int
    queue_url: str = field(compare=False)
    event: dict[str, Any] = field(compare=False)
    kind: str = field(compare=False)  # the envelope


@dataclass(slots=True)
class EventStats:
    """What the publisher did since start (or the last reset)."""

    planned: int = 0  # events planned (duplicates included)
    published: int = 0
    duplicated: int = 0
    failed: int = 0  # SQS refused the entry, or the call failed
    dropped: int = 0  # the queue was full (max_pending)
    batches: int = 0
    by_type: dict[str, int] = field(default_factory=dict)  # published, by eventType

    def to_json(self, pending: int) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "published": self.published,
            "duplicated": self.duplicated,
            "failed": self.failed,
            "dropped": self.dropped,
            "batches": self.batches,
            "pending": pending,
            "by_type": dict(self.by_type),
        }


class EventPublisher(BackgroundService):
    """Plans the events of accepted sends and publishes them when due (module docstring)."""

    def __init__(
        self,
        seed: int | None = None,
        *,
        max_pending: int = MAX_PENDING,
        clock: Any = time.monotonic,
        wall: Any = time.time,
    ) -> None:
        super().__init__("sandbox-events")
        self.max_pending = max_pending
        self._clock = clock
        self._wall = wall
        self._rng = random.Random(seed)
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._closing = False
        self._batches = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._clients = AsyncExitStack()
        self._sqs: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._in_flight_events = 0
        self.stats = EventStats()

    def reseed(self, seed: int | None) -> None:
        self._rng.seed(seed)

    def reset_stats(self) -> None:
        self.stats = EventStats()

    @property
    def pending(self) -> int:
        """Events waiting to be published or in a batch in flight."""
        return len(self._heap) + self._in_flight_events

    def stats_json(self) -> dict[str, Any]:
        return self.stats.to_json(self.pending)

    # -- planning (synchronous: called on the send path) ---------------------------------------
    def publish(self, record: SendRecord, operation: str, config: SandboxConfig) -> None:
        """Plan the events of one accepted send for publishing, if events are on."""
        queue_url = config.events_queue_url
        prefix = event_prefix(operation)
        if queue_url is None or prefix is None or record.dry_run:
            return
        rng = self._rng
        outcome = draw_outcome(config.events_outcomes, prefix, rng)
        events = plan_events(record, operation, outcome, rng.choice(("QUEUED", "PENDING")))
        # Offsets after the send, in natural order, the last one events_delay_ms ± jitter.
        count = len(events)
        offsets_ms = sorted(
            max(0.0, config.events_delay_ms * (i + 1) / count + _jitter(rng, config))
            for i in range(count)
        )
        request_ms = events[0]["messageRequestTimestamp"]
        for i, (event, offset_ms) in enumerate(zip(events, offsets_ms, strict=True)):
            event["eventTimestamp"] = request_ms + int(offset_ms) + i
        publish_order = list(events)
        if config.events_reorder:
            rng.shuffle(publish_order)
        now = self._clock()
        planned: list[tuple[float, dict[str, Any]]] = []
        for event, offset_ms in zip(publish_order, offsets_ms, strict=True):
            planned.append((now + offset_ms / 1000.0, event))
            if config.events_duplicate_rate > 0 and rng.random() < config.events_duplicate_rate:
                again_ms = offset_ms + rng.uniform(0.0, max(config.events_delay_ms, 1.0))
                planned.append((now + again_ms / 1000.0, event))
                self.stats.duplicated += 1
        for due, event in planned:
            self._push(_Due(due, next(self._seq), queue_url, event, config.events_envelope))

    def _push(self, item: _Due) -> None:
        if self._closing or len(self._heap) >= self.max_pending:
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                log.warning(
                    "sandbox_events_dropped",
                    dropped=self.stats.dropped,
                    max_pending=self.max_pending,
                    closing=self._closing,
                    hint="the events queue is not keeping up; lower the send rate",
                )
            return
        self.stats.planned += 1
        heapq.heappush(self._heap, item)
        if self._runner is None or self._runner.done():
            self.start()
            self._runner = self.spawn(self._run(), name="sandbox-events-runner")
        self._wake.set()

    # -- publishing (the background task) -----------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            due: list[_Due] = []
            while self._heap and (self._closing or self._heap[0].due <= now):
                due.append(heapq.heappop(self._heap))
            if due:
                await self._dispatch(due)
                continue
            if self._closing:
                return
            timeout = self._heap[0].due - now if self._heap else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _dispatch(self, due: list[_Due]) -> None:
        by_queue: dict[str, list[_Due]] = {}
        for item in due:
            by_queue.setdefault(item.queue_url, []).append(item)
        for queue_url, items in by_queue.items():
            for start in range(0, len(items), SQS_MAX_BATCH):
                batch = items[start : start + SQS_MAX_BATCH]
                await self._batches.acquire()  # bounds the batches in flight
                self._in_flight_events += len(batch)
                self.spawn(self._send(queue_url, batch))

    async def _client(self, queue_url: str) -> Any:
        if self._sqs is None:
            self._sqs = await self._clients.enter_async_context(
                aws_client(
                    "sqs",
                    region=queue_region(queue_url),
                    retries={"mode": "standard", "total_max_attempts": 3},
                    connect_timeout=5,
                    read_timeout=20,
                )
            )
        return self._sqs

    async def _send(self, queue_url: str, items: list[_Due]) -> None:
        try:
            region, account = queue_region(queue_url), queue_account(queue_url)
            now = self._wall()
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": envelope(
                        item.event, item.kind, region=region, account=account, now=now
                    ),
                }
                for i, item in enumerate(items)
            ]
            try:
                sqs = await self._client(queue_url)
                answer = await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:
                self.stats.failed += len(items)
                log.error(
                    "sandbox_events_publish_failed",
                    queue_url=queue_url,
                    events=len(items),
                    error=f"{type(exc).__name__}: {exc}",
                    hint="check events_queue_url, and the SQS endpoint and credentials "
                    "(AWS_ENDPOINT_URL_SQS, AWS_ACCESS_KEY_ID...) of the sandbox's environment",
                )
                return
            self.stats.batches += 1
            failed = answer.get("Failed") or []
            sent = {int(s["Id"]) for s in answer.get("Successful") or []}
            by_type = self.stats.by_type
            for i in sent:
                event_type = str(items[i].event.get("eventType"))
                by_type[event_type] = by_type.get(event_type, 0) + 1
            self.stats.published += len(sent)
            if failed:
                self.stats.failed += len(failed)
                log.error(
                    "sandbox_events_publish_refused",
                    queue_url=queue_url,
                    events=len(failed),
                    codes=sorted({str(f.get("Code")) for f in failed}),
                )
        finally:
            self._in_flight_events -= len(items)
            self._batches.release()

    async def _drain(self) -> None:
        """Publish everything still waiting (delay or not), then close the SQS client."""
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self.wait_spawned()
        except TimeoutError:
            log.warning(
                "sandbox_events_drain_timeout", left=len(self._heap), timeout_s=DRAIN_TIMEOUT_S
            )
            for task in list(self._spawned):
                task.cancel()
            await self.wait_spawned()
        finally:
            await self._clients.aclose()


def _jitter(rng: random.Random, config: SandboxConfig) -> float:
    jitter = config.events_jitter_ms
    return rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
