"""What the sandbox's delivery events say: the events of one accepted send, and their envelopes.

For each accepted send (not a dry run) :func:`plan_events` builds the events End User
Messaging would publish, in order: ``QUEUED`` or ``PENDING``, then ``SUCCESSFUL`` (final: the
carrier accepted it), then the carrier's final event, ``DELIVERED`` or a failure (none for
the ``accepted_only`` outcome). Their prefix is the operation's (``TEXT_`` for
SendTextMessage, ``MEDIA_`` for SendMediaMessage); the fields are the service's
(``messageId`` is the id the send returned, ``context`` the request's ``Context``), the
price follows from the message (its parts), not from chance. :func:`envelope` wraps an event
as it reaches a queue (raw, SNS, EventBridge). Pure: the publisher
(:mod:`worker.sandbox.events`) does the I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker.model import segments

if TYPE_CHECKING:
    from worker.sandbox.state import SendRecord

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
