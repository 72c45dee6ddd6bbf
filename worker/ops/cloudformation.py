"""A minimal CloudFormation template for what ``sms-worker init`` creates.

The queue, its dead-letter queue ``<QueueName>-dlq`` with the redrive policy, and the status
table (on-demand, TTL on ``ExpiresAt``, point-in-time recovery), the names as parameters; with
an events queue name, the delivery-events path too (:func:`events_resources`: the events queue
and its dead-letter queue, the SNS topic, its policy, the raw subscription, the queue policy
and, with a configuration set name, the configuration set publishing to the topic).
No IAM or compute: the full deployment template is kept under ``deploy/``. Built as a dict
and printed as JSON (valid CloudFormation, no extra dependency) or YAML when PyYAML is there.
"""

from __future__ import annotations

import json
from typing import Any

from worker.resources import KEY, RETENTION_S, TTL_ATTRIBUTE
from worker.resources.events import EVENT_DESTINATION, MATCHING_EVENT_TYPES

QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,76}$"  # 80 characters less the "-dlq" suffix
TABLE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{3,255}$"
CONFIGURATION_SET_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
EVENTS_VISIBILITY_TIMEOUT_S = 60


def events_resources(*, configuration_set: bool) -> dict[str, Any]:
    """The delivery-events resources (parameters ``EventsQueueName``, ``MaxReceiveCount``
    and, with ``configuration_set``, ``ConfigurationSetName``)."""
    queue_arn = {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    topic = {"Ref": "EventsTopic"}
    resources: dict[str, Any] = {
        "EventsDeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": {"Fn::Sub": "${EventsQueueName}-dlq"},
                "MessageRetentionPeriod": int(RETENTION_S),
            },
        },
        "EventsQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": {"Ref": "EventsQueueName"},
                "VisibilityTimeout": EVENTS_VISIBILITY_TIMEOUT_S,
                "MessageRetentionPeriod": int(RETENTION_S),
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
                    "maxReceiveCount": {"Ref": "MaxReceiveCount"},
                },
            },
        },
        "EventsTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": {"Fn::Sub": "${EventsQueueName}-topic"}},
        },
        "EventsTopicPolicy": {
            "Type": "AWS::SNS::TopicPolicy",
            "Properties": {
                "Topics": [topic],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "EndUserMessagingPublishes",
                            "Effect": "Allow",
                            "Principal": {"Service": "sms-voice.amazonaws.com"},
                            "Action": "sns:Publish",
                            "Resource": topic,
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                            },
                        }
                    ],
                },
            },
        },
        "EventsQueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "EventsQueue"}],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "EventsTopicSends",
                            "Effect": "Allow",
                            "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": queue_arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
                        }
                    ],
                },
            },
        },
        "EventsSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "TopicArn": topic,
                "Protocol": "sqs",
                "Endpoint": queue_arn,
                "RawMessageDelivery": True,
            },
        },
    }
    if configuration_set:
        resources["ConfigurationSet"] = {
            "Type": "AWS::SMSVOICE::ConfigurationSet",
            "DependsOn": "EventsTopicPolicy",
            "Properties": {
                "ConfigurationSetName": {"Ref": "ConfigurationSetName"},
                "EventDestinations": [
                    {
                        "EventDestinationName": EVENT_DESTINATION,
                        "Enabled": True,
                        "MatchingEventTypes": list(MATCHING_EVENT_TYPES),
                        "SnsDestination": {"TopicArn": topic},
                    }
                ],
            },
        }
    return resources


def template(
    *,
    queue_name: str | None = None,
    table: str | None = None,
    max_receive_count: int = 5,
    visibility_timeout_s: int = 120,
    events_queue_name: str | None = None,
    configuration_set: str | None = None,
) -> dict[str, Any]:
    """The template; given names become the parameters' defaults. The events resources are
    in it when ``events_queue_name`` is given."""

    def named(description: str, pattern: str, default: str | None) -> dict[str, Any]:
        parameter: dict[str, Any] = {
            "Type": "String",
            "Description": description,
            "AllowedPattern": pattern,
        }
        if default is not None:
            parameter["Default"] = default
        return parameter

    document = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            "sms-worker: the queue of MMS send requests with its dead-letter queue, and the "
            "status table (generated by 'sms-worker init --print-cloudformation')"
        ),
        "Parameters": {
            "QueueName": named(
                "Name of the queue of send requests; the dead-letter queue is <QueueName>-dlq",
                QUEUE_NAME_PATTERN,
                queue_name,
            ),
            "TableName": named("Name of the DynamoDB status table", TABLE_NAME_PATTERN, table),
            "MaxReceiveCount": {
                "Type": "Number",
                "Description": "Receives before a message moves to the dead-letter queue",
                "Default": max_receive_count,
                "MinValue": 1,
                "MaxValue": 1000,
            },
            "VisibilityTimeout": {
                "Type": "Number",
                "Description": "Default visibility timeout of the queue, in seconds",
                "Default": visibility_timeout_s,
                "MinValue": 0,
                "MaxValue": 43200,
            },
        },
        "Resources": {
            "DeadLetterQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": {"Fn::Sub": "${QueueName}-dlq"},
                    "MessageRetentionPeriod": int(RETENTION_S),
                },
            },
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": {"Ref": "QueueName"},
                    "VisibilityTimeout": {"Ref": "VisibilityTimeout"},
                    "MessageRetentionPeriod": int(RETENTION_S),
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
                    },
                },
            },
            "StatusTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "TableName": {"Ref": "TableName"},
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": KEY, "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
                    "TimeToLiveSpecification": {
                        "AttributeName": TTL_ATTRIBUTE,
                        "Enabled": True,
                    },
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                },
            },
        },
        "Outputs": {
            "QueueUrl": {
                "Description": "SMS_WORKER_QUEUE_URL",
                "Value": {"Ref": "Queue"},
            },
            "QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "DeadLetterQueueArn": {"Value": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}},
            "TableName": {"Description": "SMS_WORKER_TABLE", "Value": {"Ref": "StatusTable"}},
            "TableArn": {"Value": {"Fn::GetAtt": ["StatusTable", "Arn"]}},
        },
    }
    if events_queue_name is not None:
        _add_events(document, named, events_queue_name, configuration_set)
    return document


def _add_events(
    document: dict[str, Any],
    named: Any,
    events_queue_name: str,
    configuration_set: str | None,
) -> None:
    parameters, outputs = document["Parameters"], document["Outputs"]
    parameters["EventsQueueName"] = named(
        "Name of the delivery-events queue; its dead-letter queue is <EventsQueueName>-dlq, "
        "its SNS topic <EventsQueueName>-topic",
        QUEUE_NAME_PATTERN,
        events_queue_name,
    )
    if configuration_set is not None:
        parameters["ConfigurationSetName"] = named(
            "Name of the configuration set whose event destination publishes to the topic",
            CONFIGURATION_SET_PATTERN,
            configuration_set,
        )
    document["Resources"].update(events_resources(configuration_set=configuration_set is not None))
    outputs["EventsQueueUrl"] = {
        "Description": "SMS_WORKER_EVENTS_QUEUE_URL",
        "Value": {"Ref": "EventsQueue"},
    }
    outputs["EventsTopicArn"] = {"Value": {"Ref": "EventsTopic"}}
    if configuration_set is not None:
        outputs["ConfigurationSetName"] = {
            "Description": "SMS_WORKER_DEFAULT_CONFIGURATION_SET",
            "Value": {"Ref": "ConfigurationSet"},
        }


def render(document: dict[str, Any], fmt: str = "json") -> str:
    """The template as JSON, or YAML if PyYAML is installed (``ImportError`` otherwise)."""
    if fmt == "yaml":
        import yaml  # type: ignore[import-untyped, unused-ignore]

        return str(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    return json.dumps(document, indent=2) + "\n"
