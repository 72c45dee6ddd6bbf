"""``sms-worker enqueue``: JSON lines, CSV folding and ``--campaign-id`` as a child process
against the local queue; option and file problems in process (no queue needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from producer_support import HEADER, csv_text, drain, good_row, phone, run_enqueue, write
from support import Aws, Env, queue_depth

from worker.cli import main
from worker.producer.check import scan_file
from worker.producer.schema import schema_text


async def test_jsonl_with_campaign_id_fills_missing_keys(
    aws: Aws, env: Env, tmp_path: Path
) -> None:
    base = {"OriginationIdentity": "pool-producer", "MessageBody": "hi"}
    lines = [
        json.dumps({**base, "DestinationPhoneNumber": phone(1)}),
        json.dumps({**base, "DestinationPhoneNumber": phone(2), "RequestId": "own-2"}),
        "",
        json.dumps({**base, "DestinationPhoneNumber": phone(4), "CampaignId": "other"}),
    ]
    path = write(tmp_path / "requests.jsonl", "\n".join(lines) + "\n")
    code, out, err = await run_enqueue(
        str(path), "--queue-url", env.queue_url, "--campaign-id", "summer", "--progress", "none",
        "--no-expected-total",
    )  # fmt: skip
    assert code == 0, err
    assert re.search(r"enqueued\s+3\n", out) and "warning" not in err
    found = {b["RequestId"]: b for b in await drain(aws.sqs, env.queue_url)}
    assert found == {
        "summer-1": {**base, "DestinationPhoneNumber": phone(1), "RequestId": "summer-1",
                     "CampaignId": "summer"},
        "own-2": {**base, "DestinationPhoneNumber": phone(2), "RequestId": "own-2",
                  "CampaignId": "summer"},
        "summer-4": {**base, "DestinationPhoneNumber": phone(4), "RequestId": "summer-4",
                     "CampaignId": "other"},
    }  # fmt: skip


async def test_csv_rows_arrive_folded_and_typed(aws: Aws, env: Env, tmp_path: Path) -> None:
    header = [*HEADER, "Context.kind"]
    row = good_row(1, MediaUrls="s3://my-media/a.png", TimeToLive="600", DryRun="false")
    row["Context.kind"] = "gift"
    bare = good_row(2, RequestId="")  # no RequestId and no --campaign-id: a warning
    bare["Context.orderId"] = ""
    path = write(tmp_path / "rows.csv", csv_text([row, bare], header))
    code, out, err = await run_enqueue(str(path), "--queue-url", env.queue_url)
    assert code == 0, err
    assert re.search(r"enqueued\s+2\n", out)
    assert "1 rows have no RequestId" in err and "--campaign-id" in err
    assert "enqueueing: 2/2 rows (100%)" in err  # plain progress: stderr is not a terminal
    bodies = sorted(await drain(aws.sqs, env.queue_url), key=lambda b: "RequestId" in b)
    assert bodies == [
        {"DestinationPhoneNumber": phone(2), "OriginationIdentity": "pool-producer",
         "MessageBody": "hello 2"},
        {"RequestId": "csv-1", "DestinationPhoneNumber": phone(1),
         "OriginationIdentity": "pool-producer", "MessageBody": "hello 1",
         "MediaUrls": ["s3://my-media/a.png"], "TimeToLive": 600, "DryRun": False,
         "Context": {"orderId": "order-1", "kind": "gift"}},
    ]  # fmt: skip


async def test_a_missing_queue_is_one_clear_error(aws: Aws, env: Env, tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", csv_text([good_row(n) for n in range(25)]))
    missing = env.queue_url + "-missing"
    code, out, err = await run_enqueue(str(path), "--queue-url", missing, "--progress", "bar")
    assert code == 1
    assert "does not exist" in err and "--queue-url" in err and "not enqueued: line" not in err
    assert "0 rows were enqueued before the error, 25 were not" in err
    assert "Running the same command again is safe" in err
    assert re.search(r"failed\s+25\n", out)
    assert await queue_depth(aws.sqs, env.queue_url) == 0


def run_main(*args: str) -> int:
    return main(["enqueue", *args])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "FILE is required"),
        (("x.csv",), "no queue: pass --queue-url or set SMS_WORKER_QUEUE_URL"),
        (("x.csv", "--validate-only", "--campaign-id", "a b"), "--campaign-id must be"),
        (("x.csv", "--queue-url", "q", "--concurrency", "0"), "--concurrency must be 1..100"),
        (("x.txt", "--validate-only"), "--format csv|jsonl"),
        (("missing.csv", "--validate-only"), "does not exist"),
    ],
)
def test_option_and_file_problems_exit_2(
    args: tuple[str, ...],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("SMS_WORKER_QUEUE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "x.csv", csv_text([good_row(1)]))
    write(tmp_path / "x.txt", "")
    assert run_main(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sms-worker enqueue: ") and expected in err


def test_bad_header_and_validate_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "h.csv", "DestinationPhoneNumber,Body\n+12065550100,hi\n")
    assert run_main("h.csv", "--validate-only") == 2
    assert "column 2 'Body' is not a contract key" in capsys.readouterr().err

    rows = [good_row(1), good_row(2, DryRun="maybe"), good_row(3, MessageBody="")]
    write(tmp_path / "v.csv", csv_text(rows))
    assert run_main("v.csv", "--validate-only", "--show-errors", "1", "--progress", "none") == 1
    captured = capsys.readouterr()
    assert "invalid: line 3: DryRun:" in captured.err and "line 4" not in captured.err
    assert "1 more rows not shown (--show-errors N shows more)" in captured.err
    assert re.search(r"rows read\s+3\n\s+invalid\s+2\n\s+enqueued\s+0", captured.out)
    write(tmp_path / "ok.csv", csv_text([good_row(1)]))
    assert run_main("ok.csv", "--validate-only", "--progress", "none") == 0


def test_print_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("--print-schema") == 0
    assert capsys.readouterr().out == schema_text()


def test_a_file_that_changes_after_validation_is_not_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.producer import cli

    path = write(tmp_path / "growing.csv", csv_text([good_row(1)]))

    def scan_then_grow(*args: Any, **kwargs: Any) -> Any:
        scan = scan_file(*args, **kwargs)
        with path.open("a") as out:  # another program is still writing the file
            out.write("csv-2,+12065550102,pool-producer,hello 2,,,,\n")
        return scan

    monkeypatch.setattr(cli, "scan_file", scan_then_grow)
    queue = "http://127.0.0.1:9/000000000000/never-called"
    assert run_main(str(path), "--queue-url", queue, "--progress", "none") == 2
    err = capsys.readouterr().err
    assert "changed after it was validated" in err and "Nothing was enqueued" in err
