"""The ``sent`` log line of a real ``sms-worker run`` process joins with the provider's
records: it carries the provider's MessageId and the request's CampaignId."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    request,
    spawn_worker,
    table_items,
    wait_for,
)


async def test_sent_line_carries_message_id_and_campaign_id(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await enqueue(aws.sqs, env.queue_url, [request(1, CampaignId="spring-2024"), request(2)])
    log_path = tmp_path / "worker.log"
    worker = spawn_worker(make_settings(env), log_path)
    try:

        async def both_sent() -> dict[str, dict[str, Any]] | None:
            items = await table_items(aws.ddb, env.table)
            done = [items.get(r, {}).get("Status") for r in ("req-1", "req-2")]
            return items if done == ["SENT", "SENT"] else None

        items = await wait_for(both_sent, timeout_s=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    text = log_path.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    sent = {e["request_id"]: e for e in events if e["event"] == "sent"}
    assert set(sent) == {"req-1", "req-2"}, text
    sends = await sandbox.sends_by_destination()
    assert sum(sends.values()) == 2
    one, two = sent["req-1"], sent["req-2"]
    assert one["message_id"] == items["req-1"]["MessageId"] and one["message_id"]
    assert one["campaign_id"] == "spring-2024"  # not masked: campaign ids are not personal
    assert two["message_id"] == items["req-2"]["MessageId"]
    assert two.get("campaign_id") is None
    assert "+12065550001" not in text and "hello 1" not in text  # personal data stays out
