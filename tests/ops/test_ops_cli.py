"""``sms-worker init | status | campaign`` as child processes against the local servers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid

import pytest
from ops_support import cli, run_cli
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    request,
    running_worker,
    table_items,
    wait_for,
)

from worker.status.counters import CampaignCounters, add_expected


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_init_creates_everything_once(aws: Aws, servers: dict[str, str]) -> None:
    queue, table = unique("q"), unique("t")
    first = await cli("init", "--queue-name", queue, "--table", table, "--max-receive-count", "4")
    assert first.code == 0, first.err
    lines = first.out.splitlines()
    for what in ("queue", "dead-letter queue", "redrive policy", "table", "TTL on ExpiresAt"):
        assert any(
            line.startswith(what) and (" created " in line or " enabled " in line) for line in lines
        ), (what, first.out)

    urls = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines if "=" in line}
    queue_url = urls["SMS_WORKER_QUEUE_URL"]
    assert queue_url == (await aws.sqs.get_queue_url(QueueName=queue))["QueueUrl"]
    assert urls["SMS_WORKER_TABLE"] == table
    dlq_url = (await aws.sqs.get_queue_url(QueueName=f"{queue}-dlq"))["QueueUrl"]
    assert dlq_url in first.out
    dlq_arn = (await aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    attrs = (await aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"]))[
        "Attributes"
    ]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn and int(redrive["maxReceiveCount"]) == 4
    assert attrs["VisibilityTimeout"] == "120"
    ttl = (await aws.ddb.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "ExpiresAt"
    backups = (await aws.ddb.describe_continuous_backups(TableName=table))[
        "ContinuousBackupsDescription"
    ]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    second = await run_cli(
        "init", "--queue-name", queue, "--table", table, "--max-receive-count", "4"
    )
    assert second.code == 0, second.err
    steps = [line for line in second.out.splitlines() if line and not line.startswith(("#", "S"))]
    assert steps[:-1] and all(" exists " in line for line in steps[:-1]), second.out
    assert "nothing changed" in second.out
    assert f"SMS_WORKER_QUEUE_URL={queue_url}" in second.out

    third = await run_cli("init", "--queue-name", queue, "--table", table)  # maxReceiveCount 5 now
    assert third.code == 0, third.err
    assert "redrive policy          updated" in third.out and "nothing changed" not in third.out
    attrs = (await aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"]))[
        "Attributes"
    ]
    assert int(json.loads(attrs["RedrivePolicy"])["maxReceiveCount"]) == 5


async def test_init_refuses_a_table_of_another_shape(aws: Aws, servers: dict[str, str]) -> None:
    table = unique("other")
    await aws.ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    run = await run_cli("init", "--queue-name", unique("q"), "--table", table)
    assert run.code == 1
    assert "needs the partition key RequestId of type S" in run.err
    assert "choose another table name" in run.err
    missing = await run_cli("init", "--queue-name", "q")
    assert missing.code == 2 and "--table is required" in missing.err


async def test_print_cloudformation() -> None:
    run = await run_cli(
        "init", "--print-cloudformation", "--queue-name", "mms", "--table", "mms-status"
    )
    assert run.code == 0, run.err
    document = json.loads(run.out)
    types = {name: r["Type"] for name, r in document["Resources"].items()}
    assert sorted(types.values()) == ["AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SQS::Queue"]
    queue = document["Resources"]["Queue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    table = document["Resources"]["StatusTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["KeySchema"] == [{"AttributeName": "RequestId", "KeyType": "HASH"}]
    assert document["Parameters"]["QueueName"]["Default"] == "mms"
    assert document["Parameters"]["TableName"]["Default"] == "mms-status"

    cfnlint = pytest.importorskip("cfnlint.api")
    problems = cfnlint.lint(run.out, config=cfnlint.ManualArgs(regions=["us-east-1"]))
    assert problems == []


async def test_status_of_a_sent_request(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    await enqueue(aws.sqs, env.queue_url, [request(1, CampaignId="c1")])
    async with running_worker(make_settings(env)):

        async def sent() -> bool:
            items = await table_items(aws.ddb, env.table)
            return items.get("req-1", {}).get("Status") == "SENT"

        await wait_for(sent, timeout_s=30)

    run = await run_cli("status", "req-1", "--table", env.table)
    assert run.code == 0, run.err
    fields = dict(line.split(":", 1) for line in run.out.splitlines())
    assert list(fields)[:2] == ["RequestId", "Status"]
    assert fields["Status"].strip() == "SENT" and fields["CampaignId"].strip() == "c1"
    assert fields["DestinationPhoneNumber"].strip() == "+1***01"
    assert fields["OriginationIdentity"].strip() == "+1***00"
    assert "+12065550001" not in run.out and "+18005550100" not in run.out
    widths = {len(re.match(r"\S+:\s+", line).group(0)) for line in run.out.splitlines()}  # type: ignore[union-attr]
    assert len(widths) == 1  # the values are aligned

    as_json = await run_cli("status", "req-1", "--table", env.table, "--json")
    record = json.loads(as_json.out)
    assert record["Status"] == "SENT" and record["DestinationPhoneNumber"] == "+1***01"

    whole = await run_cli(
        "status",
        "req-1",
        "--json",
        "--show-personal-data",
        env={**os.environ, "SMS_WORKER_TABLE": env.table},
    )
    assert json.loads(whole.out)["DestinationPhoneNumber"] == "+12065550001"


async def test_status_of_a_missing_request(env: Env) -> None:
    run = await run_cli("status", "no-such-request", "--table", env.table)
    assert run.code == 1 and run.out == ""
    assert "no record for RequestId 'no-such-request'" in run.err
    no_table = await run_cli("status", "r", "--table", unique("missing"))
    assert (
        no_table.code == 1
        and "does not exist" in no_table.err
        and "sms-worker init" in no_table.err
    )
    unset = {k: v for k, v in os.environ.items() if k != "SMS_WORKER_TABLE"}
    no_option = await run_cli("status", "r", env=unset)
    assert no_option.code == 2 and "pass --table NAME or set SMS_WORKER_TABLE" in no_option.err


async def test_region_comes_from_aws_region(env: Env) -> None:
    only_aws_region = {k: v for k, v in os.environ.items() if k != "AWS_DEFAULT_REGION"}
    run = await cli("status", "r", "--table", env.table, env=only_aws_region)
    assert run.code == 1 and "no record" in run.err  # reached the table: region resolved
    no_region = {k: v for k, v in only_aws_region.items() if k != "AWS_REGION"}
    no_region["AWS_CONFIG_FILE"] = "/nonexistent"  # nor a profile's region
    run = await run_cli("status", "r", "--table", env.table, env=no_region)
    assert run.code == 2 and "no AWS region is configured" in run.err


async def test_campaign_progress(aws: Aws, env: Env) -> None:
    counters = CampaignCounters(aws.ddb, env.table)
    for i in range(12):
        counters.record("spring", "SENT" if i < 9 else "FAILED", "ConflictException")
    counters.record("spring", "EXPIRED", None)
    await counters.flush()
    await add_expected(aws.ddb, env.table, "spring", 20)

    run = await cli("campaign", "spring", "--table", env.table)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("campaign spring  (counters updated ")
    assert lines[1].split() == ["SENT", "9"]
    assert lines[2].split() == ["FAILED", "3", "ConflictException", "3"]
    assert lines[3].split() == ["EXPIRED", "1"]
    assert "13 of 20 done (65.0%), 7 remaining" in run.out

    missing = await run_cli("campaign", "autumn", "--table", env.table)
    assert missing.code == 1 and "no counters for campaign 'autumn'" in missing.err
    bad = await run_cli("campaign", "not valid", "--table", env.table)
    assert bad.code == 2 and "CampaignId must be" in bad.err


async def test_campaign_watch_ends_when_done(aws: Aws, env: Env) -> None:
    await add_expected(aws.ddb, env.table, "summer", 6)
    counters = CampaignCounters(aws.ddb, env.table)
    for _ in range(2):
        counters.record("summer", "SENT", None)
    await counters.flush()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "campaign",
        "summer",
        "--table",
        env.table,
        "--watch",
        "--interval-s",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert first.startswith("summer: 2 of 6 done (33.3%), 4 remaining"), first
    for _ in range(4):
        counters.record("summer", "SENT", None)
    await counters.flush()
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()  # a plain line per refresh (not a terminal)
    assert lines[-1].startswith("summer: 6 of 6 done (100.0%), 0 remaining; SENT=6")
    assert lines[-1].endswith("; done")
    assert " sent/s" in lines[-1] and "0.0 sent/s" not in lines[-1]


async def test_campaign_watch_stops_on_ctrl_c(aws: Aws, env: Env) -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "worker", "campaign", "winter", "--table", env.table),
        *("--watch", "--interval-s", "0.2"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert first.startswith("winter: no counts yet; waiting"), first  # waits for the first
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
