"""``sms-worker init --events-queue-name``: the delivery-events path against moto (SQS + SNS).

moto has no End User Messaging configuration sets, and the sandbox answers their operations
UnknownOperationException: init says so and prints the commands that create it on AWS.
"""

from __future__ import annotations

import json
import uuid

from ops_support import run_cli
from support import Aws

from worker.resources.events import merge_statement


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _line(out: str, what: str) -> list[str]:
    (line,) = [ln for ln in out.splitlines() if ln.startswith(what + "  ")]
    return line[len(what) :].split()


async def test_init_creates_the_events_path_once_and_events_flow_raw(
    aws: Aws, servers: dict[str, str]
) -> None:
    events, table = unique("ev"), unique("tab")
    argv = ("init", "--queue-name", unique("q"), "--table", table, "--events-queue-name", events)
    first = await run_cli(*argv, "--configuration-set", "sms-worker-test")
    assert first.code == 0, first.err
    for what in ("events queue", "events dead-letter queue", "events topic", "raw subscription"):
        assert _line(first.out, what)[0] == "created", first.out
    assert _line(first.out, "queue policy")[0] == "created"
    skipped = _line(first.out, "configuration set")
    assert skipped[:2] == ["skipped", "sms-worker-test"]
    assert "UnknownOperationException" in first.out
    assert "aws pinpoint-sms-voice-v2 create-event-destination" in first.err  # the warning
    queue_url = (await aws.sqs.get_queue_url(QueueName=events))["QueueUrl"]
    assert f"SMS_WORKER_EVENTS_QUEUE_URL={queue_url}" in first.out.splitlines()

    again = await run_cli(*argv, "--configuration-set", "sms-worker-test")
    assert again.code == 0, again.err
    assert "nothing changed" in again.out
    assert _line(again.out, "raw subscription")[0] == "exists"

    attributes = (await aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"]))[
        "Attributes"
    ]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{events}-dlq")
    (statement,) = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    topic_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert topic_arn.endswith(f":{events}-topic")

    # the subscription is raw: what End User Messaging publishes is the queue's body, as is
    from aiobotocore.session import get_session

    async with get_session().create_client("sns") as sns:
        event = {"eventType": "MEDIA_DELIVERED", "messageId": "m-1", "isFinal": True}
        await sns.publish(TopicArn=topic_arn, Message=json.dumps(event))
        topic = (await sns.get_topic_attributes(TopicArn=topic_arn))["Attributes"]
        (publishes,) = json.loads(topic["Policy"])["Statement"][-1:]
        assert publishes["Principal"] == {"Service": "sms-voice.amazonaws.com"}
        assert publishes["Action"] == "sns:Publish"
    answer = await aws.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)
    (message,) = answer["Messages"]
    assert json.loads(message["Body"]) == event


async def test_a_policy_statement_of_someone_else_is_kept(
    aws: Aws, servers: dict[str, str]
) -> None:
    events = unique("ev")
    argv = ("init", "--queue-name", unique("q"), "--table", unique("tab"))
    assert (await run_cli(*argv, "--events-queue-name", events)).code == 0
    url = (await aws.sqs.get_queue_url(QueueName=events))["QueueUrl"]
    # someone replaces the policy with a statement of theirs (moto drops a queue's Policy
    # whenever another attribute is set, so this goes after init has set the others)
    theirs = {"Sid": "theirs", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}
    policy = {"Version": "2012-10-17", "Statement": [theirs]}
    await aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    run = await run_cli(*argv, "--events-queue-name", events)
    assert run.code == 0, run.err
    assert _line(run.out, "queue policy")[0] == "updated"
    assert not [ln for ln in run.out.splitlines() if ln.startswith("configuration set")]
    attributes = (await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]))[
        "Attributes"
    ]
    sids = [s["Sid"] for s in json.loads(attributes["Policy"])["Statement"]]
    assert sids == ["theirs", "sms-worker-events-topic-sends"]


def test_merging_a_statement_replaces_only_its_own_sid() -> None:
    ours = {"Sid": "sms-worker-events-topic-sends", "Effect": "Allow", "Action": "sqs:SendMessage"}
    merged, changed = merge_statement(None, ours)
    assert changed and json.loads(merged) == {"Version": "2012-10-17", "Statement": [ours]}
    assert merge_statement(merged, ours) == (merged, False)
    older = {**ours, "Action": "sqs:*"}
    theirs = {"Sid": "theirs", "Effect": "Deny"}
    policy = json.dumps({"Version": "2012-10-17", "Id": "p", "Statement": [theirs, older]})
    merged, changed = merge_statement(policy, ours)
    assert changed
    assert json.loads(merged) == {"Version": "2012-10-17", "Id": "p", "Statement": [theirs, ours]}
    assert merge_statement("not json", ours)[1] is True


async def test_a_configuration_set_needs_the_events_queue() -> None:
    run = await run_cli(
        "init", "--queue-name", "q", "--table", "tab", "--configuration-set", "sms-worker"
    )
    assert run.code == 2
    assert "--configuration-set needs --events-queue-name" in run.err
