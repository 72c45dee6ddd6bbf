"""CampaignCounters against the real (local) status table."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from support import Aws, Env, wait_for

from worker.resources import ensure_table
from worker.status.codec import decode_item
from worker.status.counters import (
    CampaignCounters,
    CountersFlushError,
    add_expected,
    counter_key,
    read_campaign,
)


async def counter_item(aws: Aws, table: str, campaign: str) -> dict[str, Any] | None:
    response = await aws.ddb.get_item(
        TableName=table, Key={"RequestId": {"S": counter_key(campaign)}}, ConsistentRead=True
    )
    item = response.get("Item")
    return decode_item(item) if item else None


def count_update_items(aws: Aws) -> list[str]:
    """The keys of the UpdateItem calls the client makes from now on (botocore's own event
    hook: the calls still go to the server)."""
    keys: list[str] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        keys.append(params["Key"]["RequestId"]["S"])

    aws.ddb.meta.events.register("provide-client-params.dynamodb.UpdateItem", seen)
    return keys


async def test_record_and_flush_one_update_per_campaign(aws: Aws, env: Env) -> None:
    counters = CampaignCounters(aws.ddb, env.table)
    for _ in range(5):
        counters.record("c1", "SENT", None)
    counters.record("c1", "FAILED", "ConflictException")
    counters.record("c1", "FAILED", "ConflictException")
    counters.record("c1", "FAILED", None)
    counters.record("c1", "EXPIRED", "NOT_AFTER_PASSED")  # codes count only for FAILED
    counters.record("c2", "SENT", None)
    assert counters.pending["c1"]["SENT"] == 5

    calls = count_update_items(aws)
    await counters.flush()
    assert sorted(calls) == ["campaign#c1", "campaign#c2"]  # one UpdateItem per campaign
    assert counters.pending == {}
    await counters.flush()  # nothing pending: no call
    assert len(calls) == 2

    item = await counter_item(aws, env.table, "c1")
    assert item is not None
    assert item["SENT"] == 5 and item["FAILED"] == 3 and item["EXPIRED"] == 1
    assert item["FAILED#ConflictException"] == 2 and item["FAILED#UNKNOWN"] == 1
    assert item["RecordType"] == "campaign-counters"
    assert item["UpdatedAt"] == item["StartedAt"]
    first_started = item["StartedAt"]

    await asyncio.sleep(0.01)
    counters.record("c1", "SENT", None)
    await counters.flush()
    item = await counter_item(aws, env.table, "c1")
    assert item is not None and item["SENT"] == 6 and item["FAILED"] == 3
    assert item["StartedAt"] == first_started < item["UpdatedAt"]

    progress = await read_campaign(aws.ddb, env.table, "c1")
    assert progress.found
    assert progress.counts == {"SENT": 6, "FAILED": 3, "EXPIRED": 1}
    assert progress.errors == {"ConflictException": 2, "UNKNOWN": 1}
    assert progress.done == 10 and progress.sent == 6 and progress.expected is None
    assert progress.updated_at is not None and progress.started_at is not None


async def test_two_instances_flushing_concurrently_add_up(aws: Aws, env: Env) -> None:
    a = CampaignCounters(aws.ddb, env.table)
    b = CampaignCounters(aws.ddb, env.table)
    for _ in range(15):
        for i in range(7):
            a.record("big", "SENT", None)
            b.record("big", "SENT" if i % 2 else "FAILED", "ThrottlingException")
        await asyncio.gather(a.flush(), b.flush(), a.flush(), b.flush())
    progress = await read_campaign(aws.ddb, env.table, "big")
    assert progress.counts["SENT"] == 15 * (7 + 3)
    assert progress.counts["FAILED"] == 15 * 4
    assert progress.errors == {"ThrottlingException": 60}
    assert progress.done == 15 * 14


async def test_a_failed_flush_keeps_its_deltas_for_the_next(aws: Aws) -> None:
    table = "t-missing-" + uuid.uuid4().hex[:8]
    counters = CampaignCounters(aws.ddb, table)
    counters.record("c1", "SENT", None)
    counters.record("c1", "FAILED", "ValidationException")
    with pytest.raises(CountersFlushError) as caught:
        await counters.flush()
    assert "c1" in caught.value.failures
    assert "ResourceNotFoundException" in str(caught.value)
    assert "next flush" in str(caught.value)  # says what happens and what to check
    assert counters.pending == {"c1": {"SENT": 1, "FAILED": 1, "FAILED#ValidationException": 1}}

    counters.record("c1", "SENT", None)  # recorded while the table is still missing
    await ensure_table(aws.ddb, table)
    await counters.flush()
    assert counters.pending == {}
    progress = await read_campaign(aws.ddb, table, "c1")
    assert progress.counts == {"SENT": 2, "FAILED": 1, "EXPIRED": 0}
    assert progress.errors == {"ValidationException": 1}


async def test_the_loop_flushes_and_close_writes_the_rest(aws: Aws, env: Env) -> None:
    async with CampaignCounters(aws.ddb, env.table, flush_interval_s=0.1, ttl_days=2) as c:
        c.record("loop", "SENT", None)
        item = await wait_for(lambda: counter_item(aws, env.table, "loop"), timeout_s=10)
        assert item["SENT"] == 1 and item["ExpiresAt"] > 0
        c.record("loop", "EXPIRED", None)  # left for close()
    progress = await read_campaign(aws.ddb, env.table, "loop")
    assert progress.counts == {"SENT": 1, "FAILED": 0, "EXPIRED": 1}
    calls = count_update_items(aws)
    await c.close()  # idempotent: nothing left, no call
    assert calls == []


async def test_expected_and_a_campaign_without_counters(aws: Aws, env: Env) -> None:
    missing = await read_campaign(aws.ddb, env.table, "nothing-yet")
    assert not missing.found and missing.done == 0 and missing.expected is None
    await add_expected(aws.ddb, env.table, "c9", 1000)
    await add_expected(aws.ddb, env.table, "c9", 500)
    progress = await read_campaign(aws.ddb, env.table, "c9")
    assert progress.found and progress.expected == 1500 and progress.done == 0


def test_only_final_statuses_and_valid_campaign_ids() -> None:
    counters = CampaignCounters(client=None, table="t")
    with pytest.raises(ValueError, match="not final"):
        counters.record("c1", "RETRYING", None)
    with pytest.raises(ValueError, match="CampaignId must be"):
        counters.record("has#hash", "SENT", None)
    with pytest.raises(ValueError, match="flush_interval_s"):
        CampaignCounters(client=None, table="t", flush_interval_s=0)
    counters.record("c1", "FAILED", "weird code/with#chars")
    assert counters.pending == {"c1": {"FAILED": 1, "FAILED#weird_code_with_chars": 1}}
