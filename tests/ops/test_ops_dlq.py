"""Dead letters are recoverable, end to end: a request exhausts its receives against a failing
SMS API and lands in the dead-letter queue as FAILED/RETRIES_EXHAUSTED; ``sms-worker dlq``
lists it (masked), ``dlq replay`` moves it back and a worker sends it once (``Replays`` 1),
while SENT and permanently FAILED dead letters stay duplicates: no second send."""

from __future__ import annotations

import json
import uuid
from typing import Any

from ops_support import run_cli
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

from worker.status.counters import read_campaign

FINAL = {"SENT", "FAILED", "EXPIRED"}
OPTED_OUT = "+12065550003"


async def _final(aws: Aws, env: Env, ids: set[str]) -> dict[str, Any] | None:
    items = await table_items(aws.ddb, env.table)
    done = ids <= items.keys() and all(items[i]["Status"] in FINAL for i in ids)
    return items if done else None


async def _depth_is(aws: Aws, url: str, n: int) -> bool:
    return await queue_depth(aws.sqs, url) == n


async def test_an_exhausted_request_is_listed_replayed_and_sent_once(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    campaign = f"c-{uuid.uuid4().hex[:8]}"
    settings = make_settings(env, retry_attempts=2, campaign_counters_flush_s=0.2)
    sent, opted_out = request(2), request(3)  # destinations +1206555000{2,3}
    exhausted = request(1, CampaignId=campaign)
    await sandbox.configure(opted_out=[OPTED_OUT])
    async with running_worker(settings):
        await enqueue(aws.sqs, env.queue_url, [sent, opted_out])
        await wait_for(lambda: _final(aws, env, {"req-2", "req-3"}), timeout_s=20)
        await sandbox.configure(fault_rate=1.0)  # every send fails: req-1 burns its 3 receives
        await enqueue(aws.sqs, env.queue_url, [exhausted])
        await wait_for(lambda: _final(aws, env, {"req-1"}), timeout_s=30)
        await wait_for(lambda: _depth_is(aws, env.dlq_url, 1), timeout_s=20)
    await sandbox.configure(fault_rate=0.0)
    items = await table_items(aws.ddb, env.table)
    first = items["req-1"]
    assert (first["Status"], first["ErrorCode"]) == ("FAILED", "RETRIES_EXHAUSTED")
    assert items["req-2"]["Status"] == "SENT" and items["req-3"]["Status"] == "FAILED"
    before = await read_campaign(aws.ddb, env.table, campaign)
    assert before.counts["FAILED"] == 1 and before.errors["RETRIES_EXHAUSTED"] == 1
    # Two dead letters that are true duplicates (as a worker wedged after its SENT writes
    # would leave them): their records are final.
    await enqueue(aws.sqs, env.dlq_url, [sent, opted_out])
    sends_before = await sandbox.sends_by_destination()
    assert sends_before == {"+12065550002": 1}

    where = ("--queue-url", env.queue_url, "--table", env.table)
    listing = await run_cli("dlq", *where)
    assert listing.code == 0, listing.err
    rows = {line.split()[0]: line for line in listing.out.splitlines()}
    assert rows.keys() == {"req-1", "req-2", "req-3"}, listing.out
    assert "FAILED" in rows["req-1"]
    assert "RETRIES_EXHAUSTED/InternalServerException" in rows["req-1"]
    assert "SENT" in rows["req-2"] and "ConflictException" in rows["req-3"]
    as_json = await run_cli("dlq", *where, "--json")
    records = {r["RequestId"]: r for r in map(json.loads, as_json.out.splitlines())}
    assert records["req-1"]["Replayable"] and not records["req-2"]["Replayable"]
    for out in (listing.out + listing.err, as_json.out):
        assert "+1206555" not in out and "hello" not in out and "+1800555" not in out
    assert await queue_depth(aws.sqs, env.dlq_url) == 3  # listing moves nothing

    dry = await run_cli("dlq", "replay", *where, "--dry-run")
    assert dry.code == 0, dry.err
    assert "would move 1, skipped 2, failed 0" in dry.out, dry.out
    other = await run_cli("dlq", "replay", *where, "--campaign-id", "nope", "--dry-run")
    assert "would move 0, skipped 3" in other.out, other.out
    by_code = await run_cli(
        "dlq", "replay", *where, "--include-final", "--error-code", "ConflictException", "--dry-run"
    )
    assert "would move 1, skipped 2" in by_code.out, by_code.out
    await wait_for(lambda: _depth_is(aws, env.dlq_url, 3), timeout_s=5)

    replay = await run_cli("dlq", "replay", *where)
    assert replay.code == 0, replay.err
    assert "moved 1, skipped 2, failed 0" in replay.out, replay.out
    assert await queue_depth(aws.sqs, env.queue_url) == 1
    # The duplicates go back too when asked: the worker deletes them without a call.
    everything = await run_cli("dlq", "replay", *where, "--include-final")
    assert "moved 2, skipped 0, failed 0" in everything.out, everything.out
    assert await queue_depth(aws.sqs, env.dlq_url) == 0

    async with running_worker(settings) as worker:
        await wait_for(lambda: _depth_is(aws, env.queue_url, 0), timeout_s=20)
        assert worker.metrics.duplicates == 2
    items = await table_items(aws.ddb, env.table)
    assert items["req-1"]["Status"] == "SENT" and items["req-1"]["Replays"] == 1
    assert "ErrorCode" not in items["req-1"]
    assert items["req-3"]["ErrorCode"] == "ConflictException" and "Replays" not in items["req-3"]
    assert await sandbox.sends_by_destination() == {"+12065550001": 1, "+12065550002": 1}
    after = await read_campaign(aws.ddb, env.table, campaign)
    assert after.counts == {"SENT": 1, "FAILED": 0, "EXPIRED": 0}  # counted once, as SENT
    assert after.errors["RETRIES_EXHAUSTED"] == 0


async def test_replay_never_deletes_what_it_could_not_send(aws: Aws, env: Env) -> None:
    await enqueue(aws.sqs, env.dlq_url, [request(1)])
    gone = (await aws.sqs.create_queue(QueueName=f"gone-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    await aws.sqs.delete_queue(QueueUrl=gone)
    run = await run_cli(
        "dlq", "replay", "--queue-url", gone, "--dlq-url", env.dlq_url, "--table", env.table
    )
    assert run.code == 1 and "sms-worker:" in run.err, (run.out, run.err)
    # Still in the dead-letter queue, visible again at once.
    got = await aws.sqs.receive_message(QueueUrl=env.dlq_url, WaitTimeSeconds=1)
    assert [json.loads(m["Body"])["RequestId"] for m in got.get("Messages", [])] == ["req-1"]


async def test_dlq_without_a_redrive_policy_says_what_to_do(aws: Aws, env: Env) -> None:
    plain = (await aws.sqs.create_queue(QueueName=f"plain-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    run = await run_cli("dlq", "--queue-url", plain, "--table", env.table)
    assert run.code == 2 and "no redrive policy" in run.err and "--dlq-url" in run.err
