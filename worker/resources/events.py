"""The delivery-events path, created or brought to what the events consumer needs.

End User Messaging -> a configuration set's SNS event destination -> the events topic ->
a raw SQS subscription -> the events queue (with its dead-letter queue) -> ``sms-worker
events``. Each step looks first and changes only what differs, like the rest of
:mod:`worker.resources`. Policies are merged by statement id, so a statement someone else added
to the queue's or the topic's policy stays. An endpoint that does not offer a step (moto has
no End User Messaging configuration sets; the sandbox does not either) makes it ``skipped``,
with the command that does it on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.aws.errors import error_code, error_message
from worker.resources.queues import provision_queue
from worker.resources.types import CREATED, EXISTS, SKIPPED, UPDATED, Step

QUEUE_SID = "sms-worker-events-topic-sends"
TOPIC_SID = "sms-worker-end-user-messaging-publishes"
EVENT_DESTINATION = "sms-worker-events"
MATCHING_EVENT_TYPES = ("TEXT_ALL", "MEDIA_ALL")
#: What an endpoint without End User Messaging configuration sets answers.
_UNSUPPORTED = frozenset(
    {"UnknownOperationException", "InvalidAction", "NotImplemented", "UnrecognizedClientException"}
)
_EXISTS = frozenset({"ConflictException"})


@dataclass(frozen=True, slots=True)
class EventsResources:
    queue_url: str
    dlq_url: str
    topic_arn: str
    configuration_set: str | None  # None: not created here (see the step)


def topic_name(queue_name: str) -> str:
    return f"{queue_name}-topic"


def queue_policy_statement(queue_arn: str, topic_arn: str) -> dict[str, Any]:
    """The topic, and only the topic, may send to the events queue."""
    return {
        "Sid": QUEUE_SID,
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }


def topic_policy_statement(topic_arn: str, account: str) -> dict[str, Any]:
    """End User Messaging of this account may publish to the topic."""
    return {
        "Sid": TOPIC_SID,
        "Effect": "Allow",
        "Principal": {"Service": "sms-voice.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": topic_arn,
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }


def merge_statement(policy_json: str | None, statement: dict[str, Any]) -> tuple[str, bool]:
    """``policy_json`` with ``statement`` in it (replacing one of the same Sid): the new
    policy and whether it changed."""
    try:
        policy = json.loads(policy_json) if policy_json else {}
    except ValueError:
        policy = {}
    if not isinstance(policy, dict):
        policy = {}
    statements = [s for s in policy.get("Statement", []) if isinstance(s, dict)]
    current = next((s for s in statements if s.get("Sid") == statement["Sid"]), None)
    if current == statement:
        return json.dumps(policy), False
    merged = {
        "Version": policy.get("Version", "2012-10-17"),
        **{k: v for k, v in policy.items() if k not in ("Version", "Statement")},
        "Statement": [s for s in statements if s.get("Sid") != statement["Sid"]] + [statement],
    }
    return json.dumps(merged), True


async def _topic(sns: Any, name: str) -> tuple[str, Step]:
    paginator = sns.get_paginator("list_topics")
    async for page in paginator.paginate():
        for topic in page.get("Topics", []):
            arn = str(topic["TopicArn"])
            if arn.rsplit(":", 1)[-1] == name:
                return arn, Step("events topic", arn, EXISTS)
    arn = str((await sns.create_topic(Name=name))["TopicArn"])
    return arn, Step("events topic", arn, CREATED)


async def _topic_policy(sns: Any, topic_arn: str) -> Step:
    account = topic_arn.split(":")[4]
    attributes = (await sns.get_topic_attributes(TopicArn=topic_arn)).get("Attributes", {})
    policy, changed = merge_statement(
        attributes.get("Policy"), topic_policy_statement(topic_arn, account)
    )
    if changed:
        await sns.set_topic_attributes(
            TopicArn=topic_arn, AttributeName="Policy", AttributeValue=policy
        )
    return Step(
        "topic policy", "sms-voice.amazonaws.com may publish", UPDATED if changed else EXISTS
    )


async def _queue_policy(sqs: Any, queue_url: str, queue_arn: str, topic_arn: str) -> Step:
    answer = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
    current = answer.get("Attributes", {})  # no Attributes at all while there is no policy
    policy, changed = merge_statement(
        current.get("Policy"), queue_policy_statement(queue_arn, topic_arn)
    )
    if changed:
        await sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})
    state = EXISTS if not changed else UPDATED if current.get("Policy") else CREATED
    return Step("queue policy", "the events topic may send", state)


async def _subscription(sns: Any, topic_arn: str, queue_arn: str) -> Step:
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    async for page in paginator.paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs" and sub.get("Endpoint") == queue_arn:
                arn = str(sub["SubscriptionArn"])
                attributes = (await sns.get_subscription_attributes(SubscriptionArn=arn))[
                    "Attributes"
                ]
                if str(attributes.get("RawMessageDelivery", "false")).lower() == "true":
                    return Step("raw subscription", arn, EXISTS)
                await sns.set_subscription_attributes(
                    SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue="true"
                )
                return Step("raw subscription", arn, UPDATED, "set RawMessageDelivery=true")
    answer = await sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )
    return Step("raw subscription", str(answer["SubscriptionArn"]), CREATED)


def configuration_set_commands(name: str, topic_arn: str) -> str:
    """The AWS CLI commands that create the configuration set and its event destination."""
    types = " ".join(MATCHING_EVENT_TYPES)
    return (
        f"aws pinpoint-sms-voice-v2 create-configuration-set --configuration-set-name {name} && "
        f"aws pinpoint-sms-voice-v2 create-event-destination --configuration-set-name {name} "
        f"--event-destination-name {EVENT_DESTINATION} --matching-event-types {types} "
        f"--sns-destination TopicArn={topic_arn}"
    )


async def _configuration_set(sms: Any, name: str, topic_arn: str) -> tuple[str | None, Step]:
    what = "configuration set"
    try:
        found = await sms.describe_configuration_sets(ConfigurationSetNames=[name])
        sets = found.get("ConfigurationSets", [])
    except ClientError as exc:
        code = error_code(exc)
        if code in _UNSUPPORTED:
            detail = (
                f"this endpoint has no End User Messaging configuration sets ({code}); on AWS "
                f"run: {configuration_set_commands(name, topic_arn)} (or deploy "
                "deploy/cloudformation/sms-worker.yaml, which creates it)"
            )
            return None, Step(what, name, SKIPPED, detail)
        if code != "ResourceNotFoundException":
            raise
        sets = []
    except BotoCoreError as exc:
        detail = (
            f"the End User Messaging endpoint did not answer ({type(exc).__name__}); "
            f"on AWS run: {configuration_set_commands(name, topic_arn)}"
        )
        return None, Step(what, name, SKIPPED, detail)
    state = EXISTS
    if not sets:
        try:
            await sms.create_configuration_set(ConfigurationSetName=name)
            state = CREATED
        except ClientError as exc:
            if error_code(exc) not in _EXISTS:
                raise
        sets = [{"EventDestinations": []}]
    destinations = sets[0].get("EventDestinations", []) if state == EXISTS else []
    ours = next(
        (
            d
            for d in destinations
            if (d.get("SnsDestination") or {}).get("TopicArn") == topic_arn and d.get("Enabled")
        ),
        None,
    )
    if ours is not None:
        return name, Step(what, name, state, f"event destination -> {topic_arn}")
    try:
        await sms.create_event_destination(
            ConfigurationSetName=name,
            EventDestinationName=EVENT_DESTINATION,
            MatchingEventTypes=list(MATCHING_EVENT_TYPES),
            SnsDestination={"TopicArn": topic_arn},
        )
    except ClientError as exc:
        raise RuntimeError(
            f"configuration set {name!r}: cannot add the SNS event destination "
            f"({error_code(exc)}: {error_message(exc)}); check that the caller may "
            "sms-voice:CreateEventDestination, or add it by hand"
        ) from exc
    return name, Step(
        what, name, CREATED if state == CREATED else UPDATED, f"event destination -> {topic_arn}"
    )


async def provision_events(
    sqs: Any,
    sns: Any,
    sms: Any | None,
    *,
    queue_name: str,
    configuration_set: str | None = None,
    max_receive_count: int = 5,
    visibility_timeout_s: int = 60,
) -> tuple[EventsResources, list[Step]]:
    """The events queue ``queue_name`` with its dead-letter queue, the topic
    ``<queue_name>-topic`` with its policy, the raw subscription and the queue policy, and
    (with ``configuration_set`` and ``sms``) the configuration set publishing to the topic."""
    queue_url, dlq_url, queue_steps = await provision_queue(
        sqs,
        queue_name,
        max_receive_count=max_receive_count,
        visibility_timeout_s=visibility_timeout_s,
    )
    steps = [Step(f"events {s.what}", s.name, s.state, s.detail) for s in queue_steps]
    queue_arn = str(
        (await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
    )
    topic_arn, topic_step = await _topic(sns, topic_name(queue_name))
    steps.append(topic_step)
    steps.append(await _topic_policy(sns, topic_arn))
    steps.append(await _queue_policy(sqs, queue_url, queue_arn, topic_arn))
    steps.append(await _subscription(sns, topic_arn, queue_arn))
    created_set: str | None = None
    if configuration_set is not None and sms is not None:
        created_set, step = await _configuration_set(sms, configuration_set, topic_arn)
        steps.append(step)
    return EventsResources(queue_url, dlq_url, topic_arn, created_set), steps
