"""Delivery events against real servers (moto SQS and DynamoDB, the sandbox): the worker's
send names its request in Context; each envelope through a real events queue; events before
the SENT write (held on the wire) end as in order; any interleaving against a real table."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import aiohttp
import pytest
from events_support import event, wrap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from support import Aws, Env, Sandbox, enqueue, make_settings, request, running_worker, wait_for

from worker.devstack.faultproxy import FaultProxy
from worker.devstack.stack import free_port
from worker.handlers.events.parse import Parsed, parse_event
from worker.health import DependencyHealth
from worker.status.codec import decode_item
from worker.status.delivery import DeliveryEvent, DeliveryWriter, apply_event
from worker.status.model import Claim, RecordFields
from worker.status.sent_writer import SentWriter
from worker.status.store import StatusStore
from worker.status.table import ConditionalTable

TIMEOUT_S = 30


async def events_queue(aws: Aws) -> str:
    name = "ev-" + uuid.uuid4().hex[:10]
    created = await aws.sqs.create_queue(QueueName=name)
    return str(created["QueueUrl"])


async def record(aws: Aws, env: Env, request_id: str) -> dict[str, Any]:
    answer = await aws.ddb.get_item(
        TableName=env.table, Key={"RequestId": {"S": request_id}}, ConsistentRead=True
    )
    return decode_item(answer["Item"]) if "Item" in answer else {}


async def sent_message_ids(sandbox: Sandbox) -> dict[str, str]:
    """RequestId -> the sandbox's MessageId, read from the Context each send carried."""
    return {
        s["params"]["Context"]["sms-worker:RequestId"]: s["message_id"]
        for s in await sandbox.sends()
    }


async def test_the_send_names_its_request_and_each_envelope_is_applied(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    events_url = await events_queue(aws)
    port = free_port()
    s = make_settings(
        env,
        events_queue_url=events_url,
        default_configuration_set="cs-default",
        metrics_port=port,
        metrics_host="127.0.0.1",
    )
    bodies = [request(1, Context={"orderId": "o-1"}), request(2, ConfigurationSetName="cs-own"),
              request(3, MediaUrls=["s3://media-bucket/a.png"])]  # fmt: skip
    async with running_worker(s) as worker:
        await enqueue(aws.sqs, env.queue_url, bodies)
        ids = await wait_for(
            lambda: _when(sent_message_ids(sandbox), lambda got: len(got) == 3), TIMEOUT_S
        )
        sends = {s["params"]["Context"]["sms-worker:RequestId"]: s for s in await sandbox.sends()}
        assert sends["req-1"]["params"]["Context"] == {
            "orderId": "o-1",
            "sms-worker:RequestId": "req-1",
        }
        assert sends["req-1"]["params"]["ConfigurationSetName"] == "cs-default"
        assert sends["req-2"]["params"]["ConfigurationSetName"] == "cs-own"
        await wait_for(lambda: _all_sent(aws, env, ids), TIMEOUT_S)
        cases = {
            "req-1": ("raw", "TEXT_DELIVERED", "DELIVERED"),
            "req-2": ("sns", "TEXT_CARRIER_UNREACHABLE", "UNDELIVERED"),
            "req-3": ("eventbridge", "MEDIA_FILE_TYPE_UNSUPPORTED", "UNDELIVERED"),
        }
        bodies_out = [
            wrap(envelope, event(kind, rid, messageId=ids[rid]))
            for rid, (envelope, kind, _) in cases.items()
        ]
        bodies_out += [
            wrap("sns", event("TEXT_DELIVERED", context={"orderId": "x"})),  # not ours
            "{not an event",  # malformed
        ]
        await enqueue(aws.sqs, events_url, bodies_out)
        for rid, (_, kind, status) in cases.items():
            got = await wait_for(
                lambda rid=rid: _when(record(aws, env, rid), lambda r: "DeliveryStatus" in r),
                TIMEOUT_S,
            )
            assert (got["DeliveryStatus"], got["DeliveryEvent"]) == (status, kind)
            assert got["PriceUsd"] == 0.00581 and got["IsoCountryCode"] == "US"
            assert got["Status"] == "SENT" and got["MessageId"] == ids[rid]
        await wait_for(lambda: _events_seen(worker, 5), TIMEOUT_S)
        outcomes = worker.metrics.event_outcomes
        assert outcomes["applied"] == 3 and outcomes["not_ours"] == 1
        assert outcomes["malformed"] == 1
        assert worker.metrics.events["TEXT_DELIVERED"] == 2
        assert worker.metrics.delivery_latency_s.count == 1
        await wait_for(lambda: _queue_empty(aws, events_url), TIMEOUT_S)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as r,
        ):
            text = await r.text()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    by_type = "sms_worker_delivery_events_total"
    assert samples[(by_type, (("event_type", "TEXT_DELIVERED"),))] == 2
    assert samples[(by_type, (("event_type", "MEDIA_FILE_TYPE_UNSUPPORTED"),))] == 1
    outcomes = "sms_worker_delivery_event_outcomes_total"
    assert samples[(outcomes, (("outcome", "applied"),))] == 3
    assert samples[(outcomes, (("outcome", "malformed"),))] == 1
    assert samples[("sms_worker_delivery_latency_seconds_count", ())] == 1


async def _when(value: Any, predicate: Any) -> Any:
    got = await value
    return got if predicate(got) else None


async def _all_sent(aws: Aws, env: Env, ids: dict[str, str]) -> bool:
    for rid in ids:
        if (await record(aws, env, rid)).get("Status") != "SENT":
            return False
    return True


async def _events_seen(worker: Any, n: int) -> bool:
    return sum(worker.metrics.event_outcomes.values()) >= n


async def _queue_empty(aws: Aws, url: str) -> bool:
    attrs = await aws.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(v) for v in attrs["Attributes"].values()) == 0


async def test_events_before_the_sent_write_end_as_in_order(
    aws: Aws, env: Env, sandbox: Sandbox, servers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SENT write held on the wire (the fault proxy holds the UpdateItem that sets SentAt)
    while the message's events arrive shuffled and duplicated: the first makes the SENDING
    record SENT (proof of the send), the held SENT write then lands and erases nothing."""
    events_url = await events_queue(aws)
    async with FaultProxy(servers["moto"], service="dynamodb") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)  # the worker's endpoint
        s = make_settings(env, events_queue_url=events_url, lease_s=20, visibility_timeout_s=30)
        # Only the SENT writer's update sets "SentAt = :now" (an event's proof of the send
        # writes SentAt = if_not_exists(...), which must go through).
        proxy.inject("hold", 6.0, {"UpdateItem"}, containing=b"SentAt = :now")
        async with running_worker(s):
            await enqueue(aws.sqs, env.queue_url, [request(7)])
            ids = await wait_for(lambda: _when(sent_message_ids(sandbox), bool), TIMEOUT_S)
            kinds = ["TEXT_QUEUED", "TEXT_SUCCESSFUL", "TEXT_DELIVERED", "TEXT_PENDING"]
            stream = [
                event(kind, "req-7", messageId=ids["req-7"], eventTimestamp=1_000 + i)
                for i, kind in enumerate(kinds)
            ]
            stream += random.sample(stream, 2)  # duplicates
            random.shuffle(stream)
            await enqueue(aws.sqs, events_url, [json.dumps(e) for e in stream])
            before_sent = await wait_for(
                lambda: _when(record(aws, env, "req-7"), lambda r: r.get("DeliveryStatus")),
                TIMEOUT_S,
            )
            assert proxy.faulted["hold"] >= 1  # the SENT write was still held
            assert proxy.faulted_by_operation == {"UpdateItem": proxy.faulted["hold"]}
            assert before_sent["Status"] == "SENT" and before_sent["MessageId"] == ids["req-7"]
            final = await wait_for(
                lambda: _when(
                    record(aws, env, "req-7"),
                    lambda r: r.get("DeliveryStatus") == "DELIVERED" and "SqsMessageId" in r
                    and r.get("Attempts") == 1 and "ReceiveCount" in r,
                ),
                TIMEOUT_S,
            )  # fmt: skip
            await wait_for(lambda: _queue_empty(aws, events_url), TIMEOUT_S)
    assert len(await sandbox.sends()) == 1
    assert (final["Status"], final["MessageId"]) == ("SENT", ids["req-7"])
    assert final["DeliveryEvent"] == "TEXT_DELIVERED" and final["DeliveredAt"]
    assert "LeaseUntil" not in final


def _event(kind: str, at_ms: int, price: float | None) -> DeliveryEvent:
    parsed = parse_event(
        json.dumps(event(kind, "x", eventTimestamp=at_ms, totalMessagePrice=price))
    )
    assert isinstance(parsed, Parsed)
    return parsed.event


KINDS = ["TEXT_QUEUED", "TEXT_SUCCESSFUL", "TEXT_DELIVERED", "TEXT_SPAM", "TEXT_UNKNOWN"]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=4),
    st.randoms(use_true_random=False),
)
async def test_any_interleaving_against_the_table_is_the_pure_rule(
    aws: Aws, env: Env, kinds: list[str], rng: random.Random
) -> None:
    """Claim, then the events (some twice) and the SENT write in a random order, against the
    real table: the record is what :func:`apply_event` says, and the highest event's."""
    request_id = "p-" + uuid.uuid4().hex[:12]
    health = DependencyHealth()
    store = StatusStore(aws.ddb, env.table, lease_s=60, ttl_days=1, health=health)
    writer = DeliveryWriter(ConditionalTable(aws.ddb, env.table, health))
    info = RecordFields(request_id, "sqs-1", 1, campaign_id="prop")
    claim = await store.claim(info)
    assert isinstance(claim, Claim)
    events = [_event(k, 1_000 + KINDS.index(k), rng.choice([0.01, None])) for k in kinds]
    events = [DeliveryEvent(request_id, *_fields(e)) for e in events]
    steps: list[DeliveryEvent | None] = [*events, *rng.sample(events, min(2, len(events))), None]
    rng.shuffle(steps)
    async with SentWriter(aws.ddb, env.table, health=health) as sent:
        for step in steps:
            if step is None:
                await sent.write(claim, info, "mid-1", 1)
            else:
                await writer.apply(step)
    got = await record(aws, env, request_id)
    top = max(events, key=lambda e: e.rank_key)
    assert got["Status"] == "SENT" and got["DeliveryStatus"] == top.status
    assert got["DeliveryEvent"] == top.event_type
    expected: dict[str, Any] | None = {"Status": "SENDING"}
    for e in sorted(events, key=lambda e: e.rank_key):
        expected = apply_event(expected, e)
    assert expected is not None
    for attr in ("DeliveryStatus", "DeliveryEvent", "DeliveryUpdatedAt", "DeliveredAt"):
        assert got.get(attr) == expected.get(attr), attr
    assert ("PriceUsd" in got) is any("PriceUsd" in e.filled for e in events)


@pytest.mark.parametrize("reverse", [False, True])
async def test_the_rank_condition_orders_by_status_then_time_then_type_on_the_table(
    aws: Aws, env: Env, reverse: bool
) -> None:
    """Each term of the rank condition decides once, in both orders, against the real table:
    a later lower status loses, an earlier same status loses, and on a tie of status and
    time the greater event type wins."""
    health = DependencyHealth()
    store = StatusStore(aws.ddb, env.table, lease_s=60, ttl_days=1, health=health)
    writer = DeliveryWriter(ConditionalTable(aws.ddb, env.table, health))
    pairs = [  # (loser, winner)
        (("TEXT_PENDING", 9_000), ("TEXT_DELIVERED", 1_000)),  # rank before time
        (("TEXT_SPAM", 1_000), ("TEXT_BLOCKED", 2_000)),  # same status: the later
        (("TEXT_BLOCKED", 5_000), ("TEXT_SPAM", 5_000)),  # same status and time: the type
    ]
    for loser, winner in pairs:
        request_id = "rank-" + uuid.uuid4().hex[:12]
        claim = await store.claim(RecordFields(request_id, "sqs-1", 1))
        assert isinstance(claim, Claim)
        events = [
            DeliveryEvent(request_id, *_fields(_event(kind, at_ms, None)))
            for kind, at_ms in (loser, winner)
        ]
        for e in reversed(events) if reverse else events:
            await writer.apply(e)
        got = await record(aws, env, request_id)
        assert (got["DeliveryEvent"], got["Status"]) == (winner[0], "SENT"), (loser, winner)


def _fields(e: DeliveryEvent) -> tuple[Any, ...]:
    return (e.event_type, e.status, e.message_id, e.timestamp_ms, e.reason, e.filled)


async def test_an_event_before_its_record_is_left_on_the_queue(aws: Aws, env: Env) -> None:
    events_url = await events_queue(aws)
    s = make_settings(
        env, events_queue_url=events_url, redelivery_base_delay_s=30, redelivery_max_delay_s=60
    )
    async with running_worker(s) as worker:
        await enqueue(aws.sqs, events_url, [json.dumps(event("TEXT_DELIVERED", "nobody-yet"))])
        await wait_for(lambda: _events_seen(worker, 1), TIMEOUT_S)
        assert worker.metrics.event_outcomes["record_missing"] == 1
        await asyncio.sleep(1.0)
        attrs = await aws.sqs.get_queue_attributes(
            QueueUrl=events_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )
        assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"  # kept


async def test_campaign_counters_agree_with_the_records_after_every_outcome(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    """A campaign whose requests end each way (delivered, undelivered by several types, only
    accepted, pending, no event, refused), with events duplicated and one outranked: the
    counter item says what a scan of the records says."""
    from support import table_items

    from worker.status.counters import read_campaign

    events_url = await events_queue(aws)
    await sandbox.configure(opted_out=["+12065550011"])
    s = make_settings(env, events_queue_url=events_url, campaign_counters_flush_s=0.2)
    plan = {
        1: ["TEXT_SUCCESSFUL", "TEXT_DELIVERED"],
        2: ["TEXT_DELIVERED", "TEXT_DELIVERED"],
        3: ["TEXT_CARRIER_UNREACHABLE"],
        4: ["TEXT_SPAM", "TEXT_BLOCKED"],  # the later failure names it
        5: ["TEXT_SUCCESSFUL"],
        6: ["TEXT_PENDING"],
        7: [],
        8: ["TEXT_TTL_EXPIRED", "TEXT_DELIVERED"],  # undelivered, then delivered after all
        9: ["MEDIA_FILE_INACCESSIBLE"],
        10: ["TEXT_UNKNOWN"],
    }
    bodies = [request(n, CampaignId="every-outcome") for n in plan]
    bodies[8]["MediaUrls"] = ["s3://media-bucket/a.png"]
    bodies.append(request(11, CampaignId="every-outcome"))  # opted out: FAILED
    async with running_worker(s):
        await enqueue(aws.sqs, env.queue_url, bodies)
        ids = await wait_for(
            lambda: _when(sent_message_ids(sandbox), lambda got: len(got) == len(plan)),
            TIMEOUT_S,
        )
        await wait_for(lambda: _all_sent(aws, env, ids), TIMEOUT_S)
        stream = [
            event(kind, f"req-{n}", messageId=ids[f"req-{n}"], eventTimestamp=1_000 + i,
                  totalMessagePrice=0.0075)
            for n, kinds in plan.items() for i, kind in enumerate(kinds)
        ]  # fmt: skip
        for start in range(0, len(stream), 4):  # in waves: some apply before others arrive
            await enqueue(aws.sqs, events_url, [json.dumps(e) for e in stream[start : start + 4]])
            await asyncio.sleep(0.2)
        await wait_for(lambda: _queue_empty(aws, events_url), TIMEOUT_S)
        await asyncio.sleep(0.6)  # two counter flushes
    records = [
        r for r in (await table_items(aws.ddb, env.table)).values()
        if r.get("CampaignId") == "every-outcome"
    ]  # fmt: skip
    progress = await read_campaign(aws.ddb, env.table, "every-outcome")
    by_status = {st: sum(r.get("Status") == st for r in records) for st in ("SENT", "FAILED")}
    assert progress.counts["SENT"] == by_status["SENT"] == len(plan)
    assert progress.counts["FAILED"] == by_status["FAILED"] == 1
    delivered = [r for r in records if r.get("DeliveryStatus") == "DELIVERED"]
    undelivered = [r for r in records if r.get("DeliveryStatus") == "UNDELIVERED"]
    assert progress.delivered == len(delivered) == 3
    by_type: dict[str, int] = {}
    for r in undelivered:
        by_type[r["DeliveryEvent"]] = by_type.get(r["DeliveryEvent"], 0) + 1
    assert progress.undelivered == by_type
    assert by_type == {"TEXT_CARRIER_UNREACHABLE": 1, "TEXT_BLOCKED": 1,
                       "MEDIA_FILE_INACCESSIBLE": 1, "TEXT_UNKNOWN": 1}  # fmt: skip
    assert progress.delivery_pending == len(plan) - 3 - 4
    assert float(progress.price_usd) == pytest.approx(sum(r.get("PriceUsd", 0) for r in records))
    assert float(progress.price_usd) == pytest.approx(0.0075 * 9)


@pytest.mark.parametrize("policy", ["confirm", "never"])
async def test_a_cut_send_is_confirmed_by_its_event_and_never_sent_again(
    aws: Aws,
    env: Env,
    sandbox: Sandbox,
    servers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
) -> None:
    """The proxy cuts the send after the sandbox accepted it (the answer lost): under confirm
    the request waits (RETRYING, AmbiguousAt), under never it is FAILED/AMBIGUOUS; its event
    makes it SENT either way, and the redelivery after the wait sends nothing."""
    events_url = await events_queue(aws)
    async with FaultProxy(servers["sandbox"], service="sms") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2", proxy.url)
        s = make_settings(
            env, events_queue_url=events_url, reclaim_policy=policy, reclaim_confirm_s=3
        )
        proxy.inject("cut", 2.0, {"SendMediaMessage"})
        async with running_worker(s) as worker:
            await enqueue(aws.sqs, env.queue_url, [request(21)])
            held = await wait_for(
                lambda: _when(record(aws, env, "req-21"), lambda r: "AmbiguousAt" in r),
                TIMEOUT_S,
            )
            assert proxy.faulted["cut"] == 1 and worker.metrics.send_calls == 1  # no retry
            if policy == "confirm":  # the call's own error code, waiting for an event
                assert (held["Status"], held["ErrorReason"]) == (
                    "RETRYING",
                    "AWAITING_DELIVERY_EVENT",
                ), held
                assert held["ErrorCode"] == "ConnectionClosedError"
            else:
                assert (held["Status"], held["ErrorCode"]) == ("FAILED", "AMBIGUOUS")
            ids = await sent_message_ids(sandbox)
            await enqueue(
                aws.sqs, events_url, [wrap("raw", event("TEXT_SUCCESSFUL", "req-21",
                                                         messageId=ids["req-21"]))]
            )  # fmt: skip
            proven = await wait_for(
                lambda: _when(record(aws, env, "req-21"), lambda r: r["Status"] == "SENT"),
                TIMEOUT_S,
            )
            assert proven["MessageId"] == ids["req-21"] and "AmbiguousAt" not in proven
            assert proven["DeliveryStatus"] == "ACCEPTED"
            await wait_for(lambda: _queue_empty(aws, env.queue_url), TIMEOUT_S)
    assert len(await sandbox.sends()) == 1  # accepted once, never sent again
    assert worker.metrics.event_outcomes["proven"] == 1
