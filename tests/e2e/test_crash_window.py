"""The crash window, closed by delivery events: a real sender killed with SIGKILL three times
mid-campaign, the sandbox emitting events (and, in some runs, cutting 5% of sends after
accepting them), a real ``sms-worker events`` process applying them. Each reclaim policy's
promise is checked against what the sandbox actually accepted:

- ``confirm``: 0 lost, 0 sent twice, every request final; the same with the cuts;
- ``resend``: nothing lost, and the cuts come back as duplicates (the policy matters);
- ``never``: 0 sent twice; an ambiguous request ends SENT (its event seen) or FAILED/AMBIGUOUS.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    queue_depth,
    request,
    spawn_worker,
    table_items,
    wait_for,
    worker_env,
)

from worker.resources import ensure_resources
from worker.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.long]
# The contract's runs (300 requests, three kills) for confirm; resend and never only need to
# show what their policy does with the cuts, so they run smaller (the suite's time budget).
FULL, SMALL = (300, (60, 130, 200)), (100, (40,))  # requests, accepted sends at each kill


def spawn_events(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "events"],
            env=worker_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def accepted(sandbox: Sandbox) -> int:
    return len(await sandbox.sends())


async def settled(aws: Aws, env: Env, events_url: str, final: Any, n: int) -> dict[str, Any] | None:
    if await queue_depth(aws.sqs, env.queue_url) or await queue_depth(aws.sqs, events_url):
        return None
    items = await table_items(aws.ddb, env.table)
    if len(items) < n or not all(final(i) for i in items.values()):
        return None
    return items


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("policy", "cut_rate", "size"),
    [
        ("confirm", 0.0, FULL),
        ("confirm", 0.05, FULL),
        ("resend", 0.1, SMALL),
        ("never", 0.1, SMALL),
    ],
    ids=["confirm", "confirm-cut", "resend-cut", "never-cut"],
)
async def test_sigkill_mid_campaign_with_events(
    aws: Aws,
    sandbox: Sandbox,
    tmp_path: Path,
    policy: str,
    cut_rate: float,
    size: tuple[int, tuple[int, ...]],
) -> None:
    n, kills = size
    # Each kill burns a receive of what the killed sender held, and a confirm wait one more:
    # a queue allowing 10 receives, as a real one would, not the fixture's 3.
    name = "crash-" + uuid.uuid4().hex[:10]
    res = await ensure_resources(aws.sqs, aws.ddb, queue_name=name, table=name,
                                 max_receive_count=10)  # fmt: skip
    env = Env(res.queue_url, res.dlq_url, res.table)
    created = await aws.sqs.create_queue(QueueName="ev-" + uuid.uuid4().hex[:10])
    events_url = str(created["QueueUrl"])
    await sandbox.configure(
        latency_ms=10,
        latency_jitter_ms=10,
        events_queue_url=events_url,
        events_envelope="sns",
        events_outcomes={"delivered": 8, "spam": 1, "carrier_unreachable": 1},
        events_delay_ms=50,
        events_jitter_ms=100,
        events_duplicate_rate=0.1,
        events_reorder=True,
        cut_after_accept_rate=cut_rate,
    )
    # confirm_s above the events' lag here (moto and three test runs on two cores: seconds),
    # as docs/events.md advises; only an ambiguous request no event proves waits that long.
    sender = make_settings(env, max_in_flight=24, reclaim_policy=policy, reclaim_confirm_s=15)
    consumer = make_settings(env, events_queue_url=events_url, max_in_flight=32)
    events = spawn_events(consumer, tmp_path / "events.log")
    worker = spawn_worker(sender, tmp_path / "sender-0.log")
    try:
        feeding = asyncio.create_task(
            feed(aws, env, [request(i, CampaignId="crash") for i in range(n)])
        )
        for k, at in enumerate(kills, start=1):
            await wait_for(lambda at=at: _at_least(sandbox, at), timeout_s=60, interval_s=0.05)
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
            worker = spawn_worker(sender, tmp_path / f"sender-{k}.log")
        await feeding

        def final(item: dict[str, Any]) -> bool:
            if item["Status"] == "SENT":
                return True
            return policy == "never" and item.get("ErrorCode") == "AMBIGUOUS"

        items = await wait_for(
            lambda: settled(aws, env, events_url, final, n), timeout_s=180, interval_s=1
        )
    finally:
        for proc in (worker, events):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        await sandbox.configure(events_queue_url=None, cut_after_accept_rate=0.0)
    accepted_sends = await sandbox.sends()
    sends = Counter(s["destination"] for s in accepted_sends)
    cut = {s["destination"] for s in accepted_sends if s.get("cut")}
    assert bool(cut) is bool(cut_rate)  # the cuts happened where asked for
    twice = sorted(d for d, c in sends.items() if c > 1)
    by_status = Counter((i["Status"], i.get("ErrorCode")) for i in items.values())
    logs = "".join(p.read_text() for p in tmp_path.glob("sender-*.log"))
    if policy == "resend":
        assert len(sends) == n  # none lost...
        assert twice and set(twice) <= cut | set(twice)  # ...and the cuts were sent again
        assert cut & set(twice)  # confirm's wait is what prevents exactly these
        assert set(by_status) == {("SENT", None)}
        return
    assert twice == [], f"sent twice under {policy}: {len(twice)}"
    if policy == "confirm":
        assert len(sends) == n and set(by_status) == {("SENT", None)}, by_status
    else:  # never: what the events proved is SENT, the rest FAILED/AMBIGUOUS, none lost
        assert set(by_status) <= {("SENT", None), ("FAILED", "AMBIGUOUS")}, by_status
        sent = {i["DestinationPhoneNumber"] for i in items.values() if i["Status"] == "SENT"}
        assert sent <= set(sends)  # every SENT was accepted
    if cut_rate:  # each cut was recorded ambiguous and then proven sent by its event
        assert '"AWAITING_DELIVERY_EVENT"' in logs or '"AMBIGUOUS"' in logs
        consumer_log = (tmp_path / "events.log").read_text()
        assert '"delivery_event_proved_send"' in consumer_log
        cut_records = [i for i in items.values() if i["DestinationPhoneNumber"] in cut]
        assert all(i["Status"] == "SENT" for i in cut_records)  # an event came for each


async def _at_least(sandbox: Sandbox, n: int) -> bool:
    return await accepted(sandbox) >= n


async def feed(aws: Aws, env: Env, bodies: list[Any]) -> None:
    """Enqueue a chunk at a time, keeping moto's queue shallow."""
    for start in range(0, len(bodies), 30):
        while await queue_depth(aws.sqs, env.queue_url) > 60:
            await asyncio.sleep(0.2)
        await enqueue(aws.sqs, env.queue_url, bodies[start : start + 30])
