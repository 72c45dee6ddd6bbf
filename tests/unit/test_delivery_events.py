"""Delivery events without servers: every type of the API through the three envelopes, the
bodies that are not ours or not events, and the pure apply rule (ranked, idempotent, order
free, proof of a send), with a property test over interleavings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from events_support import ENVELOPES, event, wrap
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.handlers.events import decide as d
from worker.handlers.events.parse import Malformed, NotOurs, Parsed, parse_event
from worker.handlers.held import Delete, Release
from worker.status.delivery import Applied, ApplyResult, DeliveryEvent, apply_event
from worker.status.model import DeliveryStatus, delivery_rank

# The contract's table (section 4), written out: the suffix after TEXT_/MEDIA_ -> status.
CONTRACT = {
    "QUEUED": "PENDING",
    "PENDING": "PENDING",
    "SUCCESSFUL": "ACCEPTED",
    "DELIVERED": "DELIVERED",
    **{
        failure: "UNDELIVERED"
        for failure in (
            "INVALID", "INVALID_MESSAGE", "UNREACHABLE", "CARRIER_UNREACHABLE", "BLOCKED",
            "CARRIER_BLOCKED", "SPAM", "UNKNOWN", "TTL_EXPIRED", "PROTECT_BLOCKED",
        )
    },
}  # fmt: skip
MEDIA_ONLY = ("MEDIA_FILE_INACCESSIBLE", "MEDIA_FILE_TYPE_UNSUPPORTED", "MEDIA_FILE_SIZE_EXCEEDED")
TYPES = [
    *(f"TEXT_{suffix}" for suffix in CONTRACT),
    *(f"MEDIA_{suffix}" for suffix in CONTRACT),
    *MEDIA_ONLY,
]
EXPECTED = {
    **{f"{p}_{suffix}": status for p in ("TEXT", "MEDIA") for suffix, status in CONTRACT.items()},
    **dict.fromkeys(MEDIA_ONLY, "UNDELIVERED"),
}


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("event_type", TYPES)
def test_every_event_type_maps_as_the_contract_says(envelope: str, event_type: str) -> None:
    parsed = parse_event(wrap(envelope, event(event_type)))
    assert isinstance(parsed, Parsed), parsed
    assert parsed.envelope == envelope
    got = parsed.event
    assert (got.status, got.request_id, got.message_id) == (EXPECTED[event_type], "req-1", "mid-1")
    assert got.filled == {
        "PriceUsd": 0.00581,
        "CarrierFeeUsd": 0.00302,
        "MessageParts": 1,
        "IsoCountryCode": "US",
    }
    assert got.reason == "described"


def test_a_media_file_error_is_no_text_event() -> None:
    assert isinstance(parse_event(json.dumps(event("TEXT_FILE_INACCESSIBLE"))), Malformed)
    assert isinstance(parse_event(json.dumps(event("TEXT_MEDIA_FILE_INACCESSIBLE"))), Malformed)


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_an_event_naming_no_request_of_ours_is_not_ours(envelope: str) -> None:
    for context in ({"orderId": "o-1"}, None):
        parsed = parse_event(wrap(envelope, event("TEXT_DELIVERED", context=context)))
        assert isinstance(parsed, NotOurs) and parsed.envelope == envelope
        assert d.on_parse(parsed) == d.Decision(Delete(), d.Kind.NOT_OURS)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"Type": "Notification", "Message": "{broken"}),
        json.dumps({"Type": "Notification", "Message": 7}),
        json.dumps({"detail-type": "x", "detail": "text"}),
        json.dumps(event("TEXT_DELIVERED", eventType=None)),
        json.dumps(event("TEXT_NEVER_HEARD_OF")),
        json.dumps(event("TEXT_DELIVERED", messageId=None)),
        json.dumps(event("TEXT_DELIVERED", eventTimestamp="yesterday")),
        json.dumps(event("TEXT_DELIVERED", context={"sms-worker:RequestId": "has space"})),
    ],
)
def test_a_malformed_body_is_counted_and_deleted_and_names_no_value(body: str) -> None:
    parsed = parse_event(body)
    assert isinstance(parsed, Malformed)
    assert d.on_parse(parsed) == d.Decision(Delete(), d.Kind.MALFORMED)
    assert "+1206" not in parsed.problem and "has space" not in parsed.problem


def test_missing_fields_leave_the_attributes_out() -> None:
    bare = event(
        "TEXT_SUCCESSFUL",
        totalMessagePrice=None,
        totalCarrierFee=None,
        totalMessageParts=None,
        isoCountryCode=None,
        messageStatusDescription=None,
    )
    parsed = parse_event(json.dumps(bare))
    assert isinstance(parsed, Parsed)
    assert parsed.event.filled == {} and parsed.event.reason is None


# -- the pure apply rule ----------------------------------------------------------------------
def delivery(event_type: str, at_ms: int = 1_000, price: float | None = 0.0058) -> DeliveryEvent:
    parsed = parse_event(
        json.dumps(
            event(event_type, eventTimestamp=at_ms, totalMessagePrice=price, totalCarrierFee=None)
        )
    )
    assert isinstance(parsed, Parsed)
    return parsed.event


SENT_RECORD = {"RequestId": "req-1", "Status": "SENT", "MessageId": "mid-1", "Attempts": 1}


def test_the_rank_never_goes_down() -> None:
    record = apply_event(SENT_RECORD, delivery("TEXT_DELIVERED", 5_000))
    assert record is not None and record["DeliveryStatus"] == "DELIVERED"
    assert record["DeliveredAt"] == "1970-01-01T00:00:05.000Z"
    for lower in ("TEXT_QUEUED", "TEXT_SUCCESSFUL", "TEXT_SPAM"):
        assert apply_event(record, delivery(lower, 9_000)) == record
    assert apply_event(record, delivery("TEXT_DELIVERED", 5_000)) == record  # a duplicate


def test_a_failure_outranks_acceptance_and_names_its_reason() -> None:
    accepted = apply_event(SENT_RECORD, delivery("TEXT_SUCCESSFUL"))
    assert accepted is not None and accepted["DeliveryStatus"] == "ACCEPTED"
    failed = apply_event(accepted, delivery("TEXT_CARRIER_UNREACHABLE", 2_000))
    assert failed is not None
    assert (failed["DeliveryStatus"], failed["DeliveryEvent"]) == (
        "UNDELIVERED",
        "TEXT_CARRIER_UNREACHABLE",
    )
    assert failed["DeliveryReason"] == "described"


@pytest.mark.parametrize(
    ("status", "error_code", "proven"),
    [
        ("SENDING", None, True),
        ("RETRYING", "ReadTimeoutError", True),
        ("FAILED", "AMBIGUOUS", True),
        ("FAILED", "RETRIES_EXHAUSTED", True),
        ("FAILED", "ValidationException", False),
        ("EXPIRED", None, False),
        ("SENT", None, False),
    ],
)
def test_an_event_is_proof_of_a_send(status: str, error_code: str | None, proven: bool) -> None:
    record = {"RequestId": "req-1", "Status": status, "LeaseUntil": 5, "Attempts": 1}
    if error_code:
        record["ErrorCode"] = error_code
    after = apply_event(record, delivery("TEXT_PENDING"))
    assert after is not None
    assert (after["Status"] == "SENT") is (proven or status == "SENT")
    if proven:
        assert after["MessageId"] == "mid-1"
        assert "LeaseUntil" not in after and "ErrorCode" not in after


def test_no_record_waits_then_gives_up() -> None:
    assert apply_event(None, delivery("TEXT_DELIVERED")) is None
    missing = ApplyResult(Applied.MISSING, {})
    for receive in range(1, d.RECORD_WAIT_RECEIVES):
        step = d.on_apply(d.Context(receive, 10, 2, 60, 30), missing)
        assert step.kind is d.Kind.RECORD_MISSING and isinstance(step.ack, Release)
        assert step.ack.visible_in_s == min(60, 2 * 2 ** (receive - 1))
    step = d.on_apply(d.Context(d.RECORD_WAIT_RECEIVES, 10, 2, 60, 30), missing)
    assert step == d.Decision(Delete(), d.Kind.GAVE_UP)
    # Never past the queue's own last receive (the DLQ would take it uncounted).
    assert d.on_apply(d.Context(2, 2, 2, 60, 30), missing).kind is d.Kind.GAVE_UP


MESSAGE_EVENTS = [
    "TEXT_QUEUED",
    "TEXT_PENDING",
    "TEXT_SUCCESSFUL",
    "TEXT_DELIVERED",
    "TEXT_CARRIER_UNREACHABLE",
    "TEXT_UNKNOWN",
]


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[list[DeliveryEvent | None], int]:
    """Some of one message's events (any order, some twice, some without a price) and the
    SENT write (``None``) somewhere among them; plus where the claim left the record."""
    chosen = draw(st.lists(st.sampled_from(MESSAGE_EVENTS), min_size=1, max_size=5))
    events: list[DeliveryEvent | None] = [
        delivery(t, 1_000 + 10 * MESSAGE_EVENTS.index(t), draw(st.sampled_from([0.0058, None])))
        for t in chosen
    ]
    events += draw(st.lists(st.sampled_from(events), max_size=3))  # duplicates
    events.append(None)
    return draw(st.permutations(events)), 0


def sent_write(record: dict[str, Any]) -> dict[str, Any]:
    """What SentWriter's update does to a record (its attributes only)."""
    after = {k: v for k, v in record.items() if k not in ("LeaseUntil", "ErrorCode")}
    return after | {"Status": "SENT", "MessageId": "mid-1", "Attempts": 1}


@settings(max_examples=300, deadline=None)
@given(interleavings())
def test_any_interleaving_ends_with_the_highest_event(
    case: tuple[list[DeliveryEvent | None], int],
) -> None:
    order, _ = case
    record: dict[str, Any] = {"RequestId": "req-1", "Status": "SENDING", "LeaseUntil": 9}
    for step in order:
        after = sent_write(record) if step is None else apply_event(record, step)
        assert after is not None
        record = after
    events = [e for e in order if e is not None]
    top = max(events, key=lambda e: e.rank_key)
    assert record["Status"] == "SENT" and record["MessageId"] == "mid-1"
    assert record["DeliveryStatus"] == top.status and record["DeliveryEvent"] == top.event_type
    assert record["DeliveryUpdatedAt"] == top.updated_at
    assert ("DeliveredAt" in record) is (top.status is DeliveryStatus.DELIVERED)
    assert ("PriceUsd" in record) is any("PriceUsd" in e.filled for e in events)
    assert delivery_rank(record["DeliveryStatus"]) == max(delivery_rank(e.status) for e in events)


def test_the_campaign_report_shows_delivery_from_the_counters() -> None:
    from decimal import Decimal

    from worker.ops.progress import compute_progress, format_block, format_line
    from worker.status.counters import CampaignProgress

    item = {
        "SENT": 10, "FAILED": 1, "EXPIRED": 0, "Expected": 11, "DELIVERED": 6,
        "UNDELIVERED": 3, "UNDELIVERED#TEXT_SPAM": 2, "UNDELIVERED#TEXT_UNKNOWN": 1,
        "PriceUsd": Decimal("0.0675"),
    }  # fmt: skip
    progress = CampaignProgress.from_item("c-1", item)
    assert (progress.delivered, progress.undelivered_total, progress.delivery_pending) == (6, 3, 1)
    assert progress.delivery_rate == 0.6
    block = format_block(progress, compute_progress(progress), age_s=None)
    line = "delivered 6, undelivered 3 (TEXT_SPAM 2, TEXT_UNKNOWN 1), pending 1; "
    assert line + "delivery rate 60.0%; cost $0.06750" in block
    assert "delivery rate 60.0%" in format_line(progress, compute_progress(progress))
    quiet = CampaignProgress.from_item("c-2", {"SENT": 1})
    assert "delivery" not in format_block(quiet, compute_progress(quiet), age_s=None)


def test_the_events_command_runs_the_consumer_alone_and_needs_its_queue() -> None:
    import os
    import subprocess
    import sys

    help_text = subprocess.run(
        [sys.executable, "-m", "worker", "events", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "--events-queue-url" in help_text and "--reclaim-policy" in help_text
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMS_WORKER_")}
    refused = subprocess.run(
        [sys.executable, "-m", "worker", "events", "--table", "t"],
        capture_output=True, text=True, env=environ,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "SMS_WORKER_EVENTS_QUEUE_URL" in refused.stderr


def test_the_reclaim_policy_defaults_to_confirm_only_with_an_events_queue() -> None:
    from worker.settings import Settings

    base = {"queue_url": "http://127.0.0.1:1/q", "table": "t"}
    assert Settings(**base).effective_reclaim_policy == "resend"
    with_events = Settings(**base, events_queue_url="http://127.0.0.1:1/events")
    assert with_events.effective_reclaim_policy == "confirm"
    assert Settings(**base, reclaim_policy="never").effective_reclaim_policy == "never"
    with pytest.raises(ValueError, match="events_queue_url"):
        Settings(**base, events_queue_url="events")
