"""``sms-worker enqueue --campaign-id C --table T``: the campaign's expected total cannot be
broken by re-runs, interruptions or a wrong table (child processes, the local servers, and a
fault-injecting proxy in front of SQS)."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from producer_support import Fault, csv_text, good_row, run_enqueue, sqs_proxy, write
from support import Aws, Env, queue_depth

from worker.cli import main
from worker.status.counters import read_campaign
from worker.status.expected import RUN_PREFIX, counter_key


async def counter_item(aws: Aws, env: Env, campaign: str) -> dict[str, Any]:
    response = await aws.ddb.get_item(
        TableName=env.table, Key={"RequestId": {"S": counter_key(campaign)}}, ConsistentRead=True
    )
    return dict(response.get("Item", {}))


def runs(item: dict[str, Any]) -> dict[str, int]:
    return {k: int(v["N"]) for k, v in item.items() if k.startswith(RUN_PREFIX)}


async def test_enqueueing_the_same_file_again_adds_nothing(
    aws: Aws, env: Env, tmp_path: Path
) -> None:
    rows = [good_row(n) for n in range(25)]
    path = write(tmp_path / "spring.csv", csv_text(rows))
    common = ("--queue-url", env.queue_url, "--table", env.table, "--progress", "none")
    for _ in range(2):
        code, _, err = await run_enqueue(str(path), *common, "--campaign-id", "spring")
        assert code == 0, err
        assert (await read_campaign(aws.ddb, env.table, "spring")).expected == 25
    random.Random(7).shuffle(rows)  # the same requests in another order: the same run
    shuffled = write(tmp_path / "shuffled.csv", csv_text(rows))
    code, _, err = await run_enqueue(str(shuffled), *common, "--campaign-id", "spring")
    assert code == 0, err
    item = await counter_item(aws, env, "spring")
    assert int(item["Expected"]["N"]) == 25 and list(runs(item).values()) == [25]
    # Another file of the same campaign adds its own rows, once.
    more = write(tmp_path / "more.csv", csv_text([good_row(n) for n in range(100, 110)]))
    for _ in range(2):
        code, _, err = await run_enqueue(str(more), *common, "--campaign-id", "spring")
        assert code == 0, err
    assert (await read_campaign(aws.ddb, env.table, "spring")).expected == 35


async def test_an_interrupted_run_records_what_was_enqueued(
    aws: Aws, env: Env, servers: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "rows.csv", csv_text([good_row(n) for n in range(60)]))
    common = ("--table", env.table, "--campaign-id", "cut", "--progress", "none")
    async with sqs_proxy(servers["moto"]) as proxy:
        # two batches of ten get through, then every call is refused (fatal: the run stops)
        proxy.faults = [Fault(), Fault()] + [Fault(status=400, code="AccessDenied")] * 10
        with monkeypatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)  # the child's SQS calls: the proxy
            code, out, err = await run_enqueue(
                str(path), "--queue-url", env.queue_url, "--concurrency", "1", *common
            )
    assert code == 1, err
    assert re.search(r"enqueued\s+20\n", out), out
    assert await queue_depth(aws.sqs, env.queue_url) == 20
    assert (await read_campaign(aws.ddb, env.table, "cut")).expected == 20  # not 60
    # Running it again completes the count (the first 20 are duplicates the worker skips).
    for _ in range(2):
        code, _, err = await run_enqueue(str(path), "--queue-url", env.queue_url, *common)
        assert code == 0, err
        assert (await read_campaign(aws.ddb, env.table, "cut")).expected == 60


async def test_a_wrong_table_stops_the_run_before_anything_is_enqueued(
    aws: Aws, env: Env, tmp_path: Path
) -> None:
    path = write(tmp_path / "rows.csv", csv_text([good_row(n) for n in range(5)]))
    code, _, err = await run_enqueue(
        str(path), "--queue-url", env.queue_url, "--campaign-id", "c", "--table", "no-such-table"
    )
    assert code == 1, err
    assert "table 'no-such-table' does not exist" in err and "Nothing was enqueued" in err
    assert "Traceback" not in err
    assert await queue_depth(aws.sqs, env.queue_url) == 0


def test_campaign_id_without_a_table_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SMS_WORKER_TABLE", raising=False)
    path = write(tmp_path / "rows.csv", csv_text([good_row(1)]))
    queue = ("--queue-url", "http://127.0.0.1:9/q")  # never reached
    assert main(["enqueue", str(path), *queue, "--campaign-id", "c"]) == 2
    err = capsys.readouterr().err
    assert "pass --table NAME or set SMS_WORKER_TABLE" in err and "--no-expected-total" in err
    assert main(["enqueue", str(path), "--campaign-id", "c", "--validate-only"]) == 0
