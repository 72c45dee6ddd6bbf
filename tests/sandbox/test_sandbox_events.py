"""The sandbox's delivery events, published to a real (moto server) SQS queue.

Each test starts an in-process sandbox whose publisher talks to moto through the standard
``AWS_ENDPOINT_URL_SQS`` the session's ``servers`` fixture sets, sends through a real
aiobotocore client, and reads what landed in the queue.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import botocore.exceptions
import pytest
from sandbox_support import ClientFactory, SandboxFactory, send_args
from support import Aws

from worker.sandbox import RunningSandbox, SandboxConfig, SendRecord
from worker.sandbox.config import EVENT_OUTCOMES
from worker.sandbox.event_plan import (
    OUTCOMES,
    draw_outcome,
    message_encoding,
    message_parts,
    plan_events,
)

FAILURES = {name: o.status for name, o in OUTCOMES.items() if o.status not in (None, "DELIVERED")}
#: What a client sees when the connection is reset without an answer (a pooled connection
#: reset may surface as either).
CUT = (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)
CONTEXT = {"campaign": "spring", "sms-worker:RequestId": "req-1"}


@pytest.fixture
async def events_queue(aws: Aws) -> AsyncIterator[str]:
    name = "sandbox-events-" + uuid.uuid4().hex[:10]
    url: str = (await aws.sqs.create_queue(QueueName=name))["QueueUrl"]
    yield url
    await aws.sqs.delete_queue(QueueUrl=url)


async def received(aws: Aws, queue_url: str, count: int, timeout_s: float = 20) -> list[str]:
    """The first ``count`` bodies in the queue, in the order SQS hands them out (deleted)."""
    bodies: list[str] = []
    async with asyncio.timeout(timeout_s):
        while len(bodies) < count:
            answer = await aws.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = answer.get("Messages", [])
            bodies += [m["Body"] for m in messages]
            if messages:
                await aws.sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
    return bodies


def unwrap(body: str, envelope: str) -> dict[str, Any]:
    outer: dict[str, Any] = json.loads(body)
    if envelope == "sns":
        inner: dict[str, Any] = json.loads(outer["Message"])
        return inner
    if envelope == "eventbridge":
        detail: dict[str, Any] = outer["detail"]
        return detail
    return outer


def by_message(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event["messageId"], []).append(event)
    return grouped


async def idle(box: RunningSandbox, timeout_s: float = 20) -> None:
    """Wait until the publisher has nothing waiting or in flight."""
    async with asyncio.timeout(timeout_s):
        while box.state.events.pending:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("envelope", ["raw", "sns", "eventbridge"])
async def test_one_send_publishes_its_events_in_each_envelope(
    aws: Aws,
    events_queue: str,
    make_sandbox: SandboxFactory,
    make_client: ClientFactory,
    envelope: str,
) -> None:
    box = await make_sandbox(events_queue_url=events_queue, events_envelope=envelope, seed=1)
    client = await make_client(box.url)
    answer = await client.send_media_message(**send_args(Context=CONTEXT))
    bodies = await received(aws, events_queue, 3)
    events = [unwrap(b, envelope) for b in bodies]

    assert [e["eventType"] for e in events][1:] == ["MEDIA_SUCCESSFUL", "MEDIA_DELIVERED"]
    assert events[0]["eventType"] in ("MEDIA_QUEUED", "MEDIA_PENDING")
    assert [e["isFinal"] for e in events] == [False, True, True]
    assert [e["messageStatus"] for e in events][1:] == ["SUCCESSFUL", "DELIVERED"]
    send = box.state.sends[0]
    for event in events:
        assert event["messageId"] == answer["MessageId"]
        assert event["context"] == CONTEXT
        assert event["destinationPhoneNumber"] == send.destination
        assert event["originationPhoneNumber"] == send.identity
        assert event["messageRequestTimestamp"] == int(send.received_at * 1000)
        assert event["eventVersion"] == "1.0"
        assert event["isoCountryCode"] == "US"
        assert event["messageType"] == "TRANSACTIONAL"
        assert event["messageEncoding"] == "GSM"
        assert event["totalMessageParts"] == 1
        assert event["totalMessagePrice"] == 0.02 and event["totalCarrierFee"] == 0.003
        assert isinstance(event["carrierName"], str) and event["messageStatusDescription"]
    stamps = [e["eventTimestamp"] for e in events]
    assert stamps == sorted(stamps) and stamps[0] >= events[0]["messageRequestTimestamp"]

    outer = [json.loads(b) for b in bodies]
    if envelope == "sns":
        assert {o["Type"] for o in outer} == {"Notification"}
        assert all(o["TopicArn"].startswith("arn:aws:sns:us-east-1:") for o in outer)
        assert all(o["SignatureVersion"] == "1" and o["MessageId"] for o in outer)
        assert all(o["Timestamp"].endswith("Z") for o in outer)
    elif envelope == "eventbridge":
        assert {o["source"] for o in outer} == {"aws.sms-voice"}
        assert {o["detail-type"] for o in outer} == {"Media Message Delivery Status Updated"}
        assert all(o["version"] == "0" and o["resources"] == [] for o in outer)
        assert all(o["region"] == "us-east-1" and o["account"] == "123456789012" for o in outer)
    else:
        assert outer == events
    await idle(box)
    stats = box.state.events.stats_json()
    assert stats["published"] == 3 and stats["failed"] == stats["dropped"] == 0
    assert stats["by_type"]["MEDIA_DELIVERED"] == 1


async def test_every_outcome_ends_in_its_final_event(
    aws: Aws, events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(events_queue_url=events_queue)
    client = await make_client(box.url)
    expected: dict[str, list[str]] = {}
    for outcome in EVENT_OUTCOMES:
        box.state.update_config(replace(box.state.config, events_outcomes={outcome: 1}))
        answer = await client.send_media_message(**send_args())
        final = OUTCOMES[outcome].status
        expected[answer["MessageId"]] = ["MEDIA_SUCCESSFUL"] + (
            [media_type(final)] if final else []
        )
    total = sum(len(types) + 1 for types in expected.values())
    events = [json.loads(b) for b in await received(aws, events_queue, total)]
    grouped = by_message(events)
    assert set(grouped) == set(expected)
    for message_id, types in expected.items():
        assert [e["eventType"] for e in grouped[message_id][1:]] == types
        assert all(e["isFinal"] for e in grouped[message_id][1:])
    failures = {e["eventType"] for e in events} - {"MEDIA_QUEUED", "MEDIA_PENDING"}
    assert {media_type(status) for status in FAILURES.values()} <= failures


async def test_an_outcome_mix_draws_every_weighted_outcome_and_no_other(
    aws: Aws, events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    weights = {"delivered": 2.0, "spam": 1.0, "accepted_only": 1.0, "ttl_expired": 0.0}
    box = await make_sandbox(events_queue_url=events_queue, events_outcomes=weights, seed=7)
    client = await make_client(box.url)
    sends = 24
    await asyncio.gather(*(client.send_media_message(**send_args()) for _ in range(sends)))
    await idle(box)
    published = box.state.events.stats_json()["published"]
    events = [json.loads(b) for b in await received(aws, events_queue, published)]
    # batches go out concurrently: a message's events may arrive in any order across them
    finals = [
        max(grouped, key=lambda e: e["eventTimestamp"])["eventType"]
        if len(grouped) == 3
        else "accepted_only"
        for grouped in by_message(events).values()
    ]
    assert len(finals) == sends
    assert set(finals) == {"MEDIA_DELIVERED", "MEDIA_SPAM", "accepted_only"}


async def test_duplicates_publish_each_event_twice(
    aws: Aws, events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(events_queue_url=events_queue, events_duplicate_rate=1.0)
    client = await make_client(box.url)
    await client.send_media_message(**send_args())
    events = [json.loads(b) for b in await received(aws, events_queue, 6)]
    types = sorted(e["eventType"] for e in events)
    assert types.count("MEDIA_SUCCESSFUL") == types.count("MEDIA_DELIVERED") == 2
    assert len({json.dumps(e, sort_keys=True) for e in events}) == 3  # identical copies
    await idle(box)
    assert box.state.events.stats_json()["duplicated"] == 3


async def test_in_order_unless_reorder_which_shuffles_but_keeps_the_timestamps(
    aws: Aws, events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(events_queue_url=events_queue, seed=3)
    client = await make_client(box.url)
    for _ in range(3):
        await client.send_media_message(**send_args())
        await idle(box)
    in_order = by_message([json.loads(b) for b in await received(aws, events_queue, 9)])
    for events in in_order.values():
        assert [e["eventType"] for e in events][1:] == ["MEDIA_SUCCESSFUL", "MEDIA_DELIVERED"]

    box.state.update_config(replace(box.state.config, events_reorder=True))
    sends = 8
    for _ in range(sends):
        await client.send_media_message(**send_args())
        await idle(box)
    shuffled = by_message([json.loads(b) for b in await received(aws, events_queue, 3 * sends)])
    orders = [[e["messageStatus"] for e in events] for events in shuffled.values()]
    natural = [o for o in orders if o[1:] == ["SUCCESSFUL", "DELIVERED"]]
    assert len(natural) < sends  # 1/6 chance each to stay in order: some moved
    for events in shuffled.values():
        by_time = sorted(events, key=lambda e: e["eventTimestamp"])
        assert [e["messageStatus"] for e in by_time][1:] == ["SUCCESSFUL", "DELIVERED"]


async def test_delay_holds_events_and_stamps_them_when_due(
    aws: Aws, events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(events_queue_url=events_queue, events_delay_ms=600)
    client = await make_client(box.url)
    await client.send_media_message(**send_args())
    stats = box.state.events.stats_json()
    assert stats["pending"] == 3 and stats["published"] == 0  # the send did not wait
    events = [json.loads(b) for b in await received(aws, events_queue, 3)]
    request_ms = events[0]["messageRequestTimestamp"]
    # spread evenly up to the delay (plus 1 ms per step, so the order is strict)
    assert [e["eventTimestamp"] - request_ms for e in events] == [200, 401, 602]


async def test_closing_the_sandbox_publishes_what_still_waits(
    aws: Aws, events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(events_queue_url=events_queue, events_delay_ms=60_000)
    client = await make_client(box.url)
    await client.send_media_message(**send_args())
    assert box.state.events.pending == 3
    await box.close()
    assert box.state.events.stats_json()["published"] == 3
    assert len(await received(aws, events_queue, 3, timeout_s=5)) == 3


async def test_a_queue_that_does_not_exist_is_counted_not_raised(
    events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    missing = events_queue.rsplit("/", 1)[0] + "/no-such-queue-" + uuid.uuid4().hex[:6]
    box = await make_sandbox(events_queue_url=missing)
    client = await make_client(box.url)
    assert (await client.send_media_message(**send_args()))["MessageId"]
    await idle(box)
    stats = box.state.events.stats_json()
    assert stats["failed"] == 3 and stats["published"] == 0


async def test_dry_runs_publish_nothing(
    aws: Aws, events_queue: str, make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(events_queue_url=events_queue)
    client = await make_client(box.url)
    await client.send_media_message(**send_args(DryRun=True))
    await client.send_media_message(**send_args())
    await idle(box)
    assert box.state.events.stats_json()["planned"] == 3


async def test_cut_after_accept_records_and_publishes_but_never_answers(
    aws: Aws,
    events_queue: str,
    make_sandbox: SandboxFactory,
    make_client: ClientFactory,
    tmp_path: Path,
) -> None:
    record = tmp_path / "sends.jsonl"
    box = await make_sandbox(
        events_queue_url=events_queue, cut_after_accept_rate=1.0, record_path=str(record)
    )
    client = await make_client(box.url)
    with pytest.raises(CUT):
        await client.send_media_message(**send_args(Context=CONTEXT))

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{box.url}/_sandbox/sends") as r:
            sends = (await r.json())["sends"]
        async with http.get(f"{box.url}/_sandbox/stats") as r:
            stats = await r.json()
    assert len(sends) == 1 and sends[0]["cut"] is True
    assert sends[0]["operation"] == "SendMediaMessage"
    assert stats["accepted"] == stats["cut_after_accept"] == 1
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(line["message_id"], line["cut"]) for line in lines] == [(sends[0]["message_id"], True)]
    events = [json.loads(b) for b in await received(aws, events_queue, 3)]
    assert {e["messageId"] for e in events} == {sends[0]["message_id"]}
    assert all(e["context"] == CONTEXT for e in events)


async def test_cut_rate_cuts_about_that_fraction_and_answers_the_rest(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(cut_after_accept_rate=0.5, seed=11)
    client = await make_client(box.url)
    answered = cut = 0
    for _ in range(20):
        try:
            await client.send_media_message(**send_args())
            answered += 1
        except CUT:
            cut += 1
    assert answered and cut and answered + cut == 20
    assert box.state.counters.cut_after_accept == cut
    assert sum(s.cut for s in box.state.sends) == cut and len(box.state.sends) == 20


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"events_envelope": "kinesis"}, "events_envelope must be one of raw, sns, eventbridge"),
        ({"events_outcomes": ["delivered"]}, "events_outcomes must be an object"),
        ({"events_outcomes": {"delivered": -1}}, "finite numbers >= 0"),
        ({"events_reorder": "yes"}, "events_reorder must be true or false"),
        ({"events_queue_url": 5}, "events_queue_url must be a string or null"),
        ({"cut_after_accept_rate": 1.5}, "cut_after_accept_rate must be between 0 and 1"),
    ],
)
async def test_admin_rejects_bad_events_knobs_with_a_reason(
    box: RunningSandbox, patch: dict[str, Any], message: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{box.url}/_sandbox/config", json=patch) as r,
    ):
        assert r.status == 400
        assert message in (await r.json())["error"]
    assert box.state.config == SandboxConfig()


def test_text_sends_get_text_events_priced_by_their_parts() -> None:
    record = SendRecord(
        message_id="m-1",
        received_at=1_700_000_000.0,
        identity="+18005550100",
        destination="+447700900123",
        dry_run=False,
        params={"MessageBody": "é" * 200, "Context": {"k": "v"}, "MessageType": "PROMOTIONAL"},
    )
    events = plan_events(record, "SendTextMessage", "carrier_unreachable", first="PENDING")
    assert [e["eventType"] for e in events] == [
        "TEXT_PENDING",
        "TEXT_SUCCESSFUL",
        "TEXT_CARRIER_UNREACHABLE",
    ]
    first = events[0]
    assert first["isoCountryCode"] == "GB" and first["messageType"] == "PROMOTIONAL"
    assert first["messageEncoding"] == "GSM"  # é is in the GSM alphabet
    assert first["totalMessageParts"] == 2  # 200 GSM characters: 2 parts of 153
    assert first["totalMessagePrice"] == 0.01162 and first["totalCarrierFee"] == 0.00604
    assert message_parts("TEXT", "日本" * 40) == 2 and message_encoding("日本") == "UCS2"
    assert plan_events(record, "SendVoiceMessage", "delivered") == []


def test_text_sends_never_draw_a_media_only_outcome() -> None:
    rng = random.Random(5)
    media_only = {"media_file_inaccessible": 1.0, "media_file_size_exceeded": 1.0}
    assert {draw_outcome(media_only, "TEXT", rng) for _ in range(20)} == {"delivered"}
    assert draw_outcome(media_only, "MEDIA", rng) in media_only
    mixed = {"spam": 1.0, **media_only}
    assert {draw_outcome(mixed, "TEXT", rng) for _ in range(20)} == {"spam"}


@pytest.mark.parametrize(
    "outcome",
    ["media_file_inaccessible", "media_file_type_unsupported", "media_file_size_exceeded"],
)
def test_media_file_failures_are_named_as_the_service_names_them_and_read_as_undelivered(
    outcome: str,
) -> None:
    from worker.handlers.events.parse import Parsed, parse_event
    from worker.status.model import DeliveryStatus

    record = SendRecord(
        message_id="m-2",
        received_at=1_700_000_000.0,
        identity="+18005550100",
        destination="+12065550100",
        dry_run=False,
        params={"MediaUrls": ["s3://b/k.png"], "Context": {"sms-worker:RequestId": "r-2"}},
    )
    final = plan_events(record, "SendMediaMessage", outcome)[-1]
    assert final["eventType"] == outcome.upper()  # MEDIA_FILE_..., never MEDIA_MEDIA_...
    parsed = parse_event(json.dumps(final))
    assert isinstance(parsed, Parsed), parsed
    assert parsed.event.status is DeliveryStatus.UNDELIVERED


def media_type(status: str) -> str:
    """A media send's event type for ``status``: MEDIA_ + it, the MEDIA_FILE_* ones as named."""
    return status if status.startswith("MEDIA_") else f"MEDIA_{status}"
