"""``sms-worker enqueue`` end to end: a 300-row CSV with 3 bad rows, as a real child process
against the local queue, then a worker sends what was enqueued."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from producer_support import csv_text, good_row, phone, run_enqueue, write
from support import (
    Aws,
    Env,
    Sandbox,
    make_settings,
    queue_depth,
    running_worker,
    table_items,
    wait_for,
)

ROWS = 300
BAD = {  # row index -> a different kind of problem each (line = index + 2)
    41: {"DestinationPhoneNumber": "+1206555"},  # the model: not a valid number
    150: {"TimeToLive": "1 hour"},  # the CSV typing: not an integer
    268: {"MediaUrls": "s3://media-bucket/clip.avi"},  # the model: not an MMS type
}


def campaign_rows() -> list[dict[str, str]]:
    rows = []
    for n in range(ROWS):
        extra: dict[str, str] = {}
        if n % 7 == 0:
            extra["MediaUrls"] = "s3://media-bucket/receipt.pdf"
        if n % 11 == 0:
            extra["TimeToLive"] = "3600"
        if n % 13 == 0:
            extra["DryRun"] = "true"
        extra.update(BAD.get(n, {}))
        rows.append(good_row(n, **extra))
    return rows


def assert_no_personal_data(*texts: str) -> None:
    for text in texts:
        assert not re.search(r"\+\d{6,}", text), "a phone number reached the output"
        assert "hello " not in text, "a message body reached the output"


async def test_bad_rows_abort_then_skip_invalid_enqueues_the_rest_and_all_are_sent(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    path = write(tmp_path / "campaign.csv", csv_text(campaign_rows()))
    bad_lines = sorted(n + 2 for n in BAD)
    common = ("--queue-url", env.queue_url, "--progress", "plain", "--campaign-id", "spring")
    common += ("--table", env.table)

    code, out, err = await run_enqueue(str(path), *common)
    assert code == 1, err
    reported = [int(line) for line in re.findall(r"^invalid: line (\d+): ", err, re.M)]
    assert reported == bad_lines
    assert "3 of 300 rows are invalid" in err and "nothing was enqueued" in err
    assert "--skip-invalid" in err
    assert await queue_depth(aws.sqs, env.queue_url) == 0
    assert_no_personal_data(out, err)

    code, out, err = await run_enqueue(str(path), *common, "--skip-invalid", "--concurrency", "4")
    assert code == 0, err
    assert [int(n) for n in re.findall(r"^invalid: line (\d+): ", err, re.M)] == bad_lines
    assert re.search(r"rows read\s+300\n\s+invalid\s+3 \(skipped\)\n\s+enqueued\s+297\n", out)
    assert re.search(r"failed\s+0\n", out) and "rows/s" in out
    assert "enqueueing: 297/297 rows (100%)" in err
    assert await queue_depth(aws.sqs, env.queue_url) == ROWS - len(BAD)
    assert_no_personal_data(out, err)

    expected = {f"csv-{n}" for n in range(ROWS) if n not in BAD}

    async def drained() -> bool:
        # cheap while the worker runs; the worker deletes a message after recording its outcome
        return await queue_depth(aws.sqs, env.queue_url) == 0

    async with running_worker(make_settings(env)):
        # 'campaign --watch' follows the counters while the worker sends, and ends by itself
        # once every request the producer enqueued is done.
        watch = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            "campaign",
            "spring",
            "--table",
            env.table,
            "--watch",
            "--interval-s",
            "0.5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        watched, watch_err = await asyncio.wait_for(watch.communicate(), 90)
        await wait_for(drained, timeout_s=45, interval_s=0.5)
    assert watch.returncode == 0, watch_err.decode()
    lines = watched.decode().strip().splitlines()
    assert len(lines) > 1  # it showed progress, not just the end
    assert "297 of 297 done" in watched.decode()
    assert_no_personal_data(watched.decode())
    items = await table_items(aws.ddb, env.table)
    assert all(items[r]["Status"] == "SENT" for r in expected)
    requests = {key for key in items if key.startswith("csv-")}
    assert requests == expected  # the bad rows never reached the queue
    assert {items[r]["CampaignId"] for r in expected} == {"spring"}  # filled in
    sends = await sandbox.sends_by_destination()
    assert sum(sends.values()) == len(expected) and sends[phone(0)] == 1
