"""Mixed SMS and MMS campaigns through the worker against the sandbox: a quota counted in
message parts, and a spend limit reached on SMS mid-campaign (MMS keeps flowing, SMS pauses
and resumes by itself). Both check that nothing is lost, sent twice or dead-lettered."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from sms_cases import ORIGIN, sms
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    queue_depth,
    request,
    running_worker,
    table_items,
    wait_for,
)

from worker.devstack.stack import free_port
from worker.model import segments


def body_of(parts: int, unicode: bool) -> str:
    """A body of exactly ``parts`` parts, GSM 03.38 or UCS-2."""
    char, single, per_part = ("я", 70, 67) if unicode else ("x", 160, 153)
    text = char * (single if parts == 1 else per_part * parts)
    assert segments.parts(text) == parts
    return text


def mixed_campaign(n_sms: int, n_mms: int, start: int = 0) -> list[dict[str, Any]]:
    """SMS of 1..10 parts, GSM and Unicode in turn, interleaved with MMS from one identity."""
    bodies: list[dict[str, Any]] = []
    for i in range(n_sms):
        text = body_of(i % 10 + 1, unicode=i % 2 == 1)
        bodies.append(sms(start + i, OriginationIdentity=ORIGIN, MessageBody=text))
    for i in range(n_mms):
        bodies.insert(2 * i + 1, request(start + 5000 + i, MediaUrls=["s3://media-b/p.jpg"]))
    return bodies


async def all_sent(aws: Aws, env: Env, ids: set[str]) -> dict[str, dict[str, Any]] | None:
    items = await table_items(aws.ddb, env.table)
    if not ids <= items.keys() or any(items[r]["Status"] != "SENT" for r in ids):
        return None
    return None if await queue_depth(aws.sqs, env.queue_url) else items


async def dead_letters(aws: Aws, env: Env) -> int:
    return await queue_depth(aws.sqs, env.dlq_url)


async def test_a_quota_in_parts_is_kept_with_almost_no_throttling(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    quota = 40.0  # parts per second for SMS, messages per second for MMS (each its bucket)
    # 2 s of tokens at the sandbox: a send reaches it after its claim, whose DynamoDB latency
    # varies on a loaded machine, so sends paced evenly by the worker can arrive bunched.
    await sandbox.configure(mps={ORIGIN: quota}, burst_s=2.0)
    bodies = mixed_campaign(20, 10)
    await enqueue(aws.sqs, env.queue_url, bodies)
    settings = make_settings(env, rate_limits=f"default=500,{ORIGIN}={quota}", max_token_wait_s=5)
    async with running_worker(settings):
        items = await wait_for(
            lambda: all_sent(aws, env, {b["RequestId"] for b in bodies}), timeout_s=60
        )
    stats = await sandbox.stats()
    assert stats["throttled"] <= 0.01 * stats["calls"], stats
    expected_parts = sum(i % 10 + 1 for i in range(20))  # 110
    assert stats["parts_by_channel"] == {"SMS": expected_parts, "MMS": 10}
    sms_items = [items[b["RequestId"]] for b in bodies if b.get("Channel") == "SMS"]
    assert sorted(i["ReservedParts"] for i in sms_items) == sorted(i % 10 + 1 for i in range(20))
    sends = await sandbox.sends()
    assert len(sends) == len(bodies) == len({s["destination"] for s in sends})  # once each
    assert await dead_letters(aws, env) == 0


async def test_a_spend_limit_on_sms_pauses_sms_only_then_it_resumes(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    first = mixed_campaign(4, 4)
    await enqueue(aws.sqs, env.queue_url, first)
    port = free_port()
    settings = make_settings(
        env, spend_limit_probe_s=1.0, metrics_port=port, metrics_host="127.0.0.1"
    )
    async with aiohttp.ClientSession() as http, running_worker(settings) as worker:
        await wait_for(lambda: all_sent(aws, env, {b["RequestId"] for b in first}), timeout_s=30)
        await sandbox.configure(spend_limit_reached=["SMS"])  # mid-campaign
        second = mixed_campaign(6, 6, start=100)
        await enqueue(aws.sqs, env.queue_url, second)
        mms_ids = {b["RequestId"] for b in second if "Channel" not in b}
        sms_ids = {b["RequestId"] for b in second if b.get("Channel") == "SMS"}

        async def mms_sent_sms_paused() -> bool:
            items = await table_items(aws.ddb, env.table)
            mms_done = all(items.get(r, {}).get("Status") == "SENT" for r in mms_ids)
            sms_waiting = all(items.get(r, {}).get("Status") != "SENT" for r in sms_ids)
            assert sms_waiting  # not one SMS goes out while the limit stands
            return mms_done and worker.cooldown.channels.paused() == {
                "SMS": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"
            }

        await wait_for(mms_sent_sms_paused, timeout_s=30)
        assert not worker.cooldown.active  # no account-wide pause: MMS kept sending
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            status, text = response.status, await response.text()
        assert status == 503 and "channel_paused:SMS:MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT" in text
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = await response.text()
        reason = "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"
        paused = f'sms_worker_channel_paused{{channel="SMS",reason="{reason}"}} 1.0'
        assert paused in metrics
        await asyncio.sleep(3)  # a few probes, each refused; receives run out meanwhile
        assert await dead_letters(aws, env) == 0
        assert (await sandbox.stats())["spend_limited"] >= 2
        await sandbox.configure(spend_limit_reached=[])  # the limit raised
        items = await wait_for(lambda: all_sent(aws, env, sms_ids | mms_ids), timeout_s=30)
        assert worker.cooldown.channels.paused() == {}
    assert {items[r]["Channel"] for r in sms_ids} == {"SMS"}
    by_destination = await sandbox.sends_by_destination()
    assert len(by_destination) == len(first) + len(second)  # 0 lost
    assert set(by_destination.values()) == {1}  # 0 sent twice
    assert await dead_letters(aws, env) == 0


async def test_a_long_pause_keeps_only_a_share_of_the_slots_and_dead_letters_the_rest_final(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    # max_in_flight 4: at most one paused SMS is kept on its last receive; the others are
    # recorded FAILED/RETRIES_EXHAUSTED (CHANNEL_PAUSED) and go to the DLQ (dlq replay brings
    # them back), so the paused channel never holds the slots MMS needs.
    await sandbox.configure(spend_limit_reached=["SMS"])
    campaign = mixed_campaign(4, 2)
    await enqueue(aws.sqs, env.queue_url, campaign)
    sms_ids = {b["RequestId"] for b in campaign if b.get("Channel") == "SMS"}
    mms_ids = {b["RequestId"] for b in campaign if "Channel" not in b}
    settings = make_settings(env, spend_limit_probe_s=1.0, max_in_flight=4)

    async def settled() -> dict[str, dict[str, Any]] | None:
        items = await table_items(aws.ddb, env.table)
        failed = [r for r in sms_ids if items.get(r, {}).get("Status") == "FAILED"]
        mms_done = all(items.get(r, {}).get("Status") == "SENT" for r in mms_ids)
        # The cap is counted while a kept message waits, so one more may slip in between.
        return items if mms_done and len(failed) >= len(sms_ids) - 2 else None

    async with running_worker(settings):
        items = await wait_for(settled, timeout_s=60)
        failed = [i for r in sms_ids if (i := items.get(r, {})).get("Status") == "FAILED"]
        assert {(i["ErrorCode"], i["ErrorReason"]) for i in failed} == {
            ("RETRIES_EXHAUSTED", "CHANNEL_PAUSED")
        }
        await wait_for(lambda: _depth_at_least(aws, env, len(failed)), timeout_s=30)
    by_destination = await sandbox.sends_by_destination()
    assert set(by_destination.values()) == {1} and len(by_destination) == len(mms_ids)


async def _depth_at_least(aws: Aws, env: Env, n: int) -> bool:
    return await dead_letters(aws, env) >= n
