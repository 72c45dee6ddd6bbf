"""deploy/cloudformation/sms-worker.yaml: cfn-lint clean, and least privilege, exactly.

The worker policy is compared with the calls the worker's code makes: every AWS operation
called in the modules ``sms-worker run`` imports, mapped to its IAM action. A new call in the
worker without its permission (or a permission the worker no longer needs) fails here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    CFN_TEMPLATE,
    ROOT,
    metrics_port_default,
    require_subcommand,
    settings_env_names,
    shutdown_budget_s,
)

from worker.model.channels import CHANNELS

cfnlint_api = pytest.importorskip("cfnlint.api", reason="needs cfn-lint")
cfnlint_decode = pytest.importorskip("cfnlint.decode", reason="needs cfn-lint")

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]
SERVICE_RESOURCES = {
    "TaskExecutionRole",
    "LogGroup",
    "Cluster",
    "TaskDefinition",
    "Service",
    "ScalableTarget",
    "BacklogPerTaskScalingPolicy",
}
# IAM actions of the SDK calls whose action is not named like the call.
BATCH_ACTIONS = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:SendMessageBatch": "sqs:SendMessage",
}
SERVICES = {"sqs": "sqs", "dynamodb": "dynamodb", "pinpoint-sms-voice-v2": "sms-voice"}
QUEUE_ARN = {"Fn::GetAtt": ["Queue", "Arn"]}
DLQ_ARN = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
TABLE_ARN = {"Fn::GetAtt": ["StatusTable", "Arn"]}
DLQ_ARN = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
IDENTITIES = {"Ref": "OriginationIdentityArns"}
CONFIGURATION_RESOURCES = {"Ref": "ConfigurationResourceArns"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    document, problems = cfnlint_decode.decode(Path(CFN_TEMPLATE))
    assert not problems, [str(p) for p in problems]
    return _plain(document)


def _plain(value: Any) -> Any:
    """cfn-lint's nodes as plain dicts, lists and strings; GetAtt always as a list."""
    if isinstance(value, dict):
        plain = {str(k): _plain(v) for k, v in value.items()}
        if set(plain) == {"Fn::GetAtt"} and isinstance(plain["Fn::GetAtt"], str):
            plain["Fn::GetAtt"] = plain["Fn::GetAtt"].split(".", 1)
        return plain
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(template["Resources"])


def _props(template: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(template["Resources"][name]["Properties"])


def _statements(document: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """Each statement with the condition it depends on (``Fn::If`` with ``AWS::NoValue``)."""
    for statement in document["Statement"]:
        if "Fn::If" in statement:
            condition, present, absent = statement["Fn::If"]
            assert absent == {"Ref": "AWS::NoValue"}, statement
            yield condition, present
        else:
            yield None, statement


def _grants(document: dict[str, Any]) -> set[tuple[str | None, str, str]]:
    """(condition, action, resource) for every Allow, after checking the statement's shape."""
    grants: set[tuple[str | None, str, str]] = set()
    for condition, statement in _statements(document):
        assert statement["Effect"] == "Allow", statement
        assert not {"NotAction", "NotResource", "Principal", "NotPrincipal"} & set(statement)
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert "*" not in action, f"no wildcard actions: {action}"
            for resource in [resources] if not isinstance(resources, list) else resources:
                assert resource != "*" and "*" not in str(resource), f"{action} on {resource}"
                grants.add((condition, action, repr(resource)))
    return grants


# --- cfn-lint -----------------------------------------------------------------------------


def _format(matches: list[Any]) -> str:
    return "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches)


def test_cfn_lint_finds_no_error_or_warning() -> None:
    config = cfnlint_api.ManualArgs(regions=REGIONS, include_checks=["I"])
    matches = cfnlint_api.lint_file(Path(CFN_TEMPLATE), config=config)
    serious = [m for m in matches if m.rule.id[0] in "EW"]
    assert serious == [], _format(serious)


def test_cfn_lint_is_really_checking() -> None:
    broken = CFN_TEMPLATE.read_text().replace(
        "BillingMode: PAY_PER_REQUEST", "BillingMode: PAY_PER_REQUESTS", 1
    )
    matches = cfnlint_api.lint(broken, regions=["us-east-1"])
    assert any(m.rule.id.startswith("E") for m in matches)


# --- the worker's permissions, exactly ----------------------------------------------------


def _module_file(name: str) -> Path | None:
    path = ROOT / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _imported(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "worker"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] == "worker":
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names}
    return found


@cache
def imported_modules(*entries: str) -> frozenset[str]:
    """Every ``worker`` module that ``entries`` import, directly or not."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_imported(name, path))
    return frozenset(seen)


@cache
def _operations() -> dict[str, str]:
    """SDK method name -> IAM action, for the three services the project calls."""
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    operations: dict[str, str] = {}
    for service, prefix in SERVICES.items():
        for operation in session.get_service_model(service).operation_names:
            action = f"{prefix}:{operation}"
            operations[xform_name(operation)] = BATCH_ACTIONS.get(action, action)
    return operations


def iam_actions(modules: frozenset[str]) -> dict[str, set[str]]:
    """IAM action -> the modules whose code makes a call that needs it."""
    operations = _operations()
    actions: dict[str, set[str]] = {}
    for module in modules:
        path = _module_file(module)
        assert path is not None
        text = path.read_text()
        for method in re.findall(r"\.([a-z_0-9]+)\(", text):
            if method in operations:
                actions.setdefault(operations[method], set()).add(module)
        # A send goes through the channel registry (getattr(client, channel.method)): that
        # module needs every registered channel's action.
        if re.search(r"\bchannel\.method\b", text):
            for channel in CHANNELS.values():
                actions.setdefault(operations[channel.method], set()).add(module)
    return actions


def test_each_channel_names_its_sdk_method_and_iam_action() -> None:
    operations = _operations()
    for channel in CHANNELS.values():
        assert operations[channel.method] == channel.iam_action == f"sms-voice:{channel.operation}"


def worker_modules() -> frozenset[str]:
    """What ``sms-worker run`` imports."""
    return imported_modules("worker.runtime.worker", "worker.settings")


def producer_modules() -> frozenset[str]:
    """What ``sms-worker enqueue`` imports."""
    return imported_modules("worker.producer.cli")


def test_the_worker_code_is_found() -> None:
    modules = worker_modules()
    assert {"worker.runtime.worker", "worker.sending.sender", "worker.status.store"} <= modules
    other_commands = ("worker.cli", "worker.ops.cli", "worker.producer", "worker.sandbox")
    assert not any(m.startswith(other_commands) for m in modules), sorted(modules)
    assert {"sms-voice:SendMediaMessage", "sms-voice:SendTextMessage"} <= set(iam_actions(modules))


def test_the_worker_policy_allows_exactly_the_calls_the_worker_makes(
    template: dict[str, Any],
) -> None:
    document = _props(template, "WorkerPolicy")["PolicyDocument"]
    granted = {action for _, action, _ in _grants(document)}
    needed = iam_actions(worker_modules())
    missing = set(needed) - granted
    unused = granted - set(needed)
    assert not missing, f"the worker calls these without permission: {missing} ({needed})"
    assert not unused, f"the policy allows what the worker never calls: {unused}"


def test_each_permission_is_on_exactly_its_resource(template: dict[str, Any]) -> None:
    document = _props(template, "WorkerPolicy")["PolicyDocument"]
    queue, table = repr(QUEUE_ARN), repr(TABLE_ARN)
    expected = {
        (None, "sqs:ReceiveMessage", queue),
        (None, "sqs:DeleteMessage", queue),
        (None, "sqs:ChangeMessageVisibility", queue),
        (None, "sqs:GetQueueAttributes", queue),
        (None, "sqs:GetQueueAttributes", repr(DLQ_ARN)),  # the sampled dead-letter depth
        (None, "dynamodb:UpdateItem", table),
        (None, "dynamodb:GetItem", table),
        (None, "dynamodb:DescribeTable", table),
        (None, "sqs:GetQueueUrl", repr(DLQ_ARN)),
        (None, "sms-voice:SendMediaMessage", repr(IDENTITIES)),
        (None, "sms-voice:SendTextMessage", repr(IDENTITIES)),
        (
            "HasConfigurationResources",
            "sms-voice:SendMediaMessage",
            repr(CONFIGURATION_RESOURCES),
        ),
        (
            "HasConfigurationResources",
            "sms-voice:SendTextMessage",
            repr(CONFIGURATION_RESOURCES),
        ),
        # SMS_WORKER_DEFAULT_CONFIGURATION_SET: a send is authorized against its set too
        (None, "sms-voice:SendMediaMessage", repr({"Fn::GetAtt": ["ConfigurationSet", "Arn"]})),
        (None, "sms-voice:SendTextMessage", repr({"Fn::GetAtt": ["ConfigurationSet", "Arn"]})),
    }
    assert _grants(document) == expected


def test_origination_identities_are_required_and_never_a_wildcard(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["OriginationIdentityArns"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert "Default" not in parameter, "the identities must be given"
    pattern = re.compile(parameter["AllowedPattern"])
    for good in [
        "arn:aws:sms-voice:us-east-1:111122223333:pool/pool-0123456789abcdef",
        "arn:aws:sms-voice:eu-west-1:111122223333:phone-number/phone-0123456789abcdef",
        "arn:aws-us-gov:sms-voice:us-gov-west-1:111122223333:pool/pool-1",
    ]:
        assert pattern.fullmatch(good), good
    for bad in [
        "*",
        "",
        "arn:aws:sms-voice:us-east-1:111122223333:pool/*",
        "arn:aws:sms-voice:*:111122223333:pool/pool-1",
        "arn:aws:sms-voice:us-east-1:111122223333:*",
        "arn:aws:sms-voice:us-east-1:111122223333:configuration-set/cs-1",
        "arn:aws:sqs:us-east-1:111122223333:pool/pool-1",
    ]:
        assert not pattern.fullmatch(bad), bad
    other = re.compile(template["Parameters"]["ConfigurationResourceArns"]["AllowedPattern"])
    assert other.fullmatch("")
    assert other.fullmatch("arn:aws:sms-voice:us-east-1:111122223333:configuration-set/cs-1")
    assert not other.fullmatch("arn:aws:sms-voice:us-east-1:111122223333:configuration-set/*")


def test_the_producer_policy_is_optional_and_only_sends(template: dict[str, Any]) -> None:
    resource = _resources(template)["ProducerPolicy"]
    assert resource["Condition"] == "CreateProducerPolicy"
    assert template["Conditions"]["CreateProducerPolicy"] == {
        "Fn::Equals": [{"Ref": "CreateProducerPolicy"}, "true"]
    }
    document = resource["Properties"]["PolicyDocument"]
    assert _grants(document) == {
        (None, "sqs:SendMessage", repr(QUEUE_ARN)),
        (None, "dynamodb:UpdateItem", repr(TABLE_ARN)),
    }
    # ... and the table only for campaign counter items, never a request's record.
    (counting,) = [st for st in document["Statement"] if st["Action"] == "dynamodb:UpdateItem"]
    assert counting["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["campaign#*"]}
    }


def test_the_producer_policy_allows_exactly_the_calls_enqueue_makes() -> None:
    from worker.cli import build_parser

    require_subcommand(build_parser(), "enqueue")
    modules = producer_modules()
    needed = iam_actions(modules)
    assert set(needed) == {"sqs:SendMessage", "dynamodb:UpdateItem"}, needed


def test_the_task_role_has_the_worker_policy_and_nothing_else(template: dict[str, Any]) -> None:
    role = _props(template, "WorkerTaskRole")
    assert role["ManagedPolicyArns"] == [{"Ref": "WorkerPolicy"}]
    assert "Policies" not in role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"


def test_no_other_iam_resources_grant_anything(template: dict[str, Any]) -> None:
    iam = {
        name: r for name, r in _resources(template).items() if r["Type"].startswith("AWS::IAM::")
    }
    assert set(iam) == {
        "WorkerPolicy",
        "ProducerPolicy",
        "WorkerTaskRole",
        "TaskExecutionRole",
        "EventsConsumerPolicy",
        "EventsConsumerTaskRole",
    }
    execution = iam["TaskExecutionRole"]["Properties"]
    assert "Policies" not in execution
    assert execution["ManagedPolicyArns"] == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
            "AmazonECSTaskExecutionRolePolicy"
        }
    ]


# --- queue, dead-letter queue, table ------------------------------------------------------


def test_the_queue_redrives_to_the_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = _props(template, "Queue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    parameter = template["Parameters"]["MaxReceiveCount"]
    assert parameter["Type"] == "Number"
    assert int(parameter["MinValue"]) >= 1
    assert queue["QueueName"] == {"Ref": "QueueName"}
    assert _props(template, "DeadLetterQueue")["QueueName"] == {"Fn::Sub": "${QueueName}-dlq"}
    for name in ("Queue", "DeadLetterQueue"):
        assert _props(template, name)["SqsManagedSseEnabled"] is True
        assert "FifoQueue" not in _props(template, name), "the worker uses a standard queue"


def test_the_status_table(template: dict[str, Any]) -> None:
    table = _props(template, "StatusTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "RequestId", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "RequestId", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert _resources(template)["StatusTable"]["DeletionPolicy"] == "Retain"


def test_the_same_resources_as_sms_worker_init(template: dict[str, Any]) -> None:
    """The queue and the table agree with what ``sms-worker init`` creates and prints."""
    cloudformation = pytest.importorskip("worker.ops.cloudformation")
    generated = cloudformation.template()
    for name in ("QueueName", "TableName"):
        assert (
            template["Parameters"][name]["AllowedPattern"]
            == generated["Parameters"][name]["AllowedPattern"]
        )
    ours, theirs = _resources(template), generated["Resources"]
    for name in ("Queue", "DeadLetterQueue", "StatusTable"):
        for key, value in theirs[name]["Properties"].items():
            if key == "VisibilityTimeout":
                continue  # a parameter there, the worker's 120 s default here
            assert str(ours[name]["Properties"][key]) == str(value), f"{name}.{key}"


def _alarm(template: dict[str, Any], metric: str, queue: str) -> dict[str, Any]:
    (found,) = [
        r["Properties"]
        for r in _resources(template).values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"]["MetricName"] == metric
        and r["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}
    ]
    return dict(found)


def test_alarms_on_dead_letters_and_the_age_of_the_oldest_message(
    template: dict[str, Any],
) -> None:
    dead = _alarm(template, "ApproximateNumberOfMessagesVisible", "DeadLetterQueue")
    oldest = _alarm(template, "ApproximateAgeOfOldestMessage", "Queue")
    events_dead = _alarm(template, "ApproximateNumberOfMessagesVisible", "EventsDeadLetterQueue")
    assert events_dead["Threshold"] == 0
    for alarm, queue in (
        (dead, "DeadLetterQueue"),
        (oldest, "Queue"),
        (events_dead, "EventsDeadLetterQueue"),
    ):
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
        ]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"  # SQS omits idle queues' metrics
        topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
        assert alarm["AlarmActions"] == alarm["OKActions"] == topic
    assert dead["Threshold"] == 0  # one dead letter is one request not sent
    assert oldest["Threshold"] == {"Ref": "OldestMessageAgeAlarmSeconds"}
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


# --- the optional ECS Fargate service -----------------------------------------------------


def test_the_service_is_optional(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["CreateService"]
    assert parameter["AllowedValues"] == ["true", "false"]
    assert parameter["Default"] == "false"
    assert template["Conditions"]["CreateService"] == {
        "Fn::Equals": [{"Ref": "CreateService"}, "true"]
    }
    resources = _resources(template)
    conditional = {n for n, r in resources.items() if r.get("Condition") == "CreateService"}
    assert conditional == SERVICE_RESOURCES
    for name, output in template["Outputs"].items():
        refs = re.findall(r"'(?:Ref|Fn::GetAtt)': \[?'(\w+)", repr(output["Value"]))
        if set(refs) & SERVICE_RESOURCES:
            assert output.get("Condition") == "CreateService", name


def test_the_task_definition(template: dict[str, Any]) -> None:
    task = _props(template, "TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}
    assert task["ExecutionRoleArn"] == {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]}
    (container,) = task["ContainerDefinitions"]
    assert container["Image"] == {"Ref": "ImageUri"}
    assert container.get("Command", ["run"]) == ["run"]
    assert int(container["StopTimeout"]) > shutdown_budget_s() >= 30
    assert int(container["StopTimeout"]) <= 120, "Fargate's maximum"
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["SMS_WORKER_DEFAULT_CONFIGURATION_SET"] == {"Ref": "ConfigurationSet"}
    assert "SMS_WORKER_EVENTS_QUEUE_URL" not in env, "the sender's role may not read events"
    assert env["SMS_WORKER_QUEUE_URL"] == {"Ref": "Queue"}
    assert env["SMS_WORKER_TABLE"] == {"Ref": "StatusTable"}
    assert env["AWS_REGION"] == {"Ref": "AWS::Region"}
    assert {k for k in env if k.startswith("SMS_WORKER_")} <= settings_env_names()
    port = int(env.get("SMS_WORKER_METRICS_PORT", metrics_port_default()))
    assert [p["ContainerPort"] for p in container["PortMappings"]] == [port]
    check = container["HealthCheck"]["Command"]
    assert check[:3] == ["CMD", "python", "-c"]
    compile(check[3], "<ecs healthcheck>", "exec")
    assert f"http://127.0.0.1:{port}/healthz" in check[3]
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert logs["Options"]["awslogs-group"] == {"Ref": "LogGroup"}


def test_the_service_scales_on_the_queue_backlog(template: dict[str, Any]) -> None:
    target = _props(template, "ScalableTarget")
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert target["MinCapacity"] == {"Ref": "MinCapacity"}
    assert target["MaxCapacity"] == {"Ref": "MaxCapacity"}
    assert int(template["Parameters"]["MinCapacity"]["MinValue"]) >= 1
    assert "DesiredCount" not in _props(template, "Service"), "an update would reset scaling"
    policy = _props(template, "BacklogPerTaskScalingPolicy")
    assert policy["ScalingTargetId"] == {"Ref": "ScalableTarget"}
    assert policy["PolicyType"] == "TargetTrackingScaling"
    configuration = policy["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["TargetValue"] == {"Ref": "TargetBacklogPerTask"}
    metrics = {m["Id"]: m for m in configuration["CustomizedMetricSpecification"]["Metrics"]}
    queue_metric = next(
        m["MetricStat"]["Metric"]
        for m in metrics.values()
        if "MetricStat" in m and m["MetricStat"]["Metric"]["Namespace"] == "AWS/SQS"
    )
    assert queue_metric["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert queue_metric["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["Queue", "QueueName"]}}
    ]
    returned = [m for m in metrics.values() if m.get("ReturnData")]
    assert len(returned) == 1 and "Expression" in returned[0]


def test_outputs(template: dict[str, Any]) -> None:
    outputs = {name: o["Value"] for name, o in template["Outputs"].items()}
    assert outputs["QueueUrl"] == {"Ref": "Queue"}
    assert outputs["DeadLetterQueueUrl"] == {"Ref": "DeadLetterQueue"}
    assert outputs["TableName"] == {"Ref": "StatusTable"}
    assert outputs["WorkerPolicyArn"] == {"Ref": "WorkerPolicy"}


# --- delivery events ----------------------------------------------------------------------

EVENTS_QUEUE_ARN = {"Fn::GetAtt": ["EventsQueue", "Arn"]}
TOPIC = {"Ref": "EventsTopic"}


def test_the_events_consumer_policy_is_exactly_its_calls_on_its_resources(
    template: dict[str, Any],
) -> None:
    document = _props(template, "EventsConsumerPolicy")["PolicyDocument"]
    events, table = repr(EVENTS_QUEUE_ARN), repr(TABLE_ARN)
    assert _grants(document) == {
        (None, "sqs:ReceiveMessage", events),
        (None, "sqs:DeleteMessage", events),
        (None, "sqs:ChangeMessageVisibility", events),
        (None, "sqs:GetQueueAttributes", events),
        (None, "dynamodb:UpdateItem", table),
        (None, "dynamodb:GetItem", table),
    }
    role = _props(template, "EventsConsumerTaskRole")
    assert role["ManagedPolicyArns"] == [{"Ref": "EventsConsumerPolicy"}]
    assert "Policies" not in role
    worker = _props(template, "WorkerPolicy")["PolicyDocument"]
    assert all(repr(EVENTS_QUEUE_ARN) != resource for _, _, resource in _grants(worker))


def test_the_events_queue_has_its_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = _props(template, "EventsQueue")
    assert queue["QueueName"] == {"Ref": "EventsQueueName"}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]
    }
    assert _props(template, "EventsDeadLetterQueue")["QueueName"] == {
        "Fn::Sub": "${EventsQueueName}-dlq"
    }
    assert int(queue["MessageRetentionPeriod"]) >= 72 * 3600, "events come up to 72 h late"
    for name in ("EventsQueue", "EventsDeadLetterQueue"):
        assert _props(template, name)["SqsManagedSseEnabled"] is True


def test_the_topic_feeds_the_queue_raw_and_only_the_topic_may(template: dict[str, Any]) -> None:
    subscription = _props(template, "EventsSubscription")
    assert subscription == {
        "TopicArn": TOPIC,
        "Protocol": "sqs",
        "Endpoint": EVENTS_QUEUE_ARN,
        "RawMessageDelivery": True,
    }
    policy = _props(template, "EventsQueuePolicy")
    assert policy["Queues"] == [{"Ref": "EventsQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == EVENTS_QUEUE_ARN
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC}}
    topic_policy = _props(template, "EventsTopicPolicy")
    (publish,) = topic_policy["PolicyDocument"]["Statement"]
    assert publish["Principal"] == {"Service": "sms-voice.amazonaws.com"}
    assert publish["Action"] == "sns:Publish" and publish["Resource"] == TOPIC
    assert publish["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


def test_the_configuration_set_publishes_text_and_media_events_to_the_topic(
    template: dict[str, Any],
) -> None:
    resource = _resources(template)["ConfigurationSet"]
    assert resource["Type"] == "AWS::SMSVOICE::ConfigurationSet"
    assert resource["DependsOn"] == "EventsTopicPolicy"  # may publish before it exists
    props = resource["Properties"]
    assert props["ConfigurationSetName"] == {"Ref": "ConfigurationSetName"}
    (destination,) = props["EventDestinations"]
    assert destination["Enabled"] is True
    assert destination["SnsDestination"] == {"TopicArn": TOPIC}
    assert sorted(destination["MatchingEventTypes"]) == ["MEDIA_ALL", "TEXT_ALL"]
    import botocore.session

    model = botocore.session.get_session().get_service_model("pinpoint-sms-voice-v2")
    assert set(destination["MatchingEventTypes"]) <= set(model.shape_for("EventType").enum)


def test_the_events_outputs_name_the_settings(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["EventsQueueUrl"]["Value"] == {"Ref": "EventsQueue"}
    assert outputs["EventsQueueUrl"]["Description"] == "SMS_WORKER_EVENTS_QUEUE_URL"
    assert outputs["ConfigurationSetName"]["Description"] == "SMS_WORKER_DEFAULT_CONFIGURATION_SET"
    assert outputs["EventsConsumerPolicyArn"]["Value"] == {"Ref": "EventsConsumerPolicy"}


def test_init_prints_the_same_events_path_and_it_lints_clean(template: dict[str, Any]) -> None:
    cloudformation = pytest.importorskip("worker.ops.cloudformation")
    generated = cloudformation.template(
        queue_name="q", table="tab", events_queue_name="ev", configuration_set="cs"
    )
    text = cloudformation.render(generated)
    matches = cfnlint_api.lint(text, regions=REGIONS)
    serious = [m for m in matches if m.rule.id[0] in "EW"]
    assert serious == [], _format(serious)
    ours, theirs = _resources(template), generated["Resources"]
    for name, resource in cloudformation.events_resources(configuration_set=True).items():
        assert theirs[name] == resource
        assert ours[name]["Type"] == resource["Type"], name
        for key, value in resource["Properties"].items():
            if key in ("VisibilityTimeout", "PolicyDocument"):
                continue  # a fallback there; Sids differ, the statements are compared above
            assert ours[name]["Properties"][key] == value, f"{name}.{key}"
    without = cloudformation.template(events_queue_name="ev")
    assert "ConfigurationSet" not in without["Resources"]
    assert "EventsQueue" not in cloudformation.template()["Resources"]
