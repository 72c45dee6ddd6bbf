"""The JSON API client against aiobotocore: same servers, same calls, same answers.

Each test makes a call through the aiobotocore client and through the JSON API client built from
it (``json_client``), over HTTP to moto and the sandbox, and compares what comes back: results,
and for errors the botocore ``ClientError`` fields the worker reads (code, modelled fields,
HTTP status). Transport failures raise the botocore exceptions aiobotocore raises.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, EndpointConnectionError
from structlog.testing import capture_logs
from support import Aws, Env, Sandbox, http_server

from worker.aws.clients import SMS_SERVICE, AwsClients
from worker.aws.fastpath import DynamoDBCalls, SqsCalls, json_client, open_fast_path
from worker.aws.jsonapi import JsonApiClient, endpoint_problem
from worker.settings import Settings

ONE_CALL = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sms(servers: dict[str, str]) -> AsyncIterator[Any]:
    async with get_session().create_client(SMS_SERVICE, config=ONE_CALL) as client:
        yield client


async def json_api(
    client: Any, http: aiohttp.ClientSession, *, max_attempts: int = 1
) -> JsonApiClient:
    credentials = await get_session().get_credentials()
    return json_client(client, http, credentials, read_timeout_s=10, max_attempts=max_attempts)


async def both_raise(botocore_call: Any, lean_call: Any) -> tuple[ClientError, ClientError]:
    with pytest.raises(ClientError) as by_botocore:
        await botocore_call
    with pytest.raises(ClientError) as by_lean:
        await lean_call
    return by_botocore.value, by_lean.value


def essentials(error: ClientError) -> dict[str, Any]:
    response = error.response
    return {
        "code": response["Error"]["Code"],
        "status": response["ResponseMetadata"]["HTTPStatusCode"],
        "fields": {k: v for k, v in response.items() if k not in ("Error", "ResponseMetadata")},
        "operation": error.operation_name,
    }


def update(table: str, request_id: str, condition: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "TableName": table,
        "Key": {"RequestId": {"S": request_id}},
        "UpdateExpression": "SET #S = :s, Tags = :tags, Price = :n ADD Attempts :one",
        "ExpressionAttributeNames": {"#S": "Status"},
        "ExpressionAttributeValues": {
            ":s": {"S": "SENDING"},
            ":tags": {"L": [{"S": "a"}, {"BOOL": True}, {"NULL": True}]},
            ":n": {"N": "0.25"},
            ":one": {"N": "1"},
        },
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if condition:
        params["ConditionExpression"] = condition
    return params


async def test_dynamodb_update_get_and_condition_failure(
    aws: Aws, env: Env, http: aiohttp.ClientSession
) -> None:
    api = await json_api(aws.ddb, http)
    by_botocore = await aws.ddb.update_item(**update(env.table, "r-botocore"))
    by_lean = await api.call("UpdateItem", update(env.table, "r-lean"))
    assert by_lean["Attributes"] | {"RequestId": {"S": "r-botocore"}} == by_botocore["Attributes"]

    key = {"TableName": env.table, "Key": {"RequestId": {"S": "r-lean"}}, "ConsistentRead": True}
    assert (await api.call("GetItem", key))["Item"] == (await aws.ddb.get_item(**key))["Item"]

    failing = update(env.table, "r-lean", condition="attribute_not_exists(RequestId)")
    botocore_error, lean_error = await both_raise(
        aws.ddb.update_item(**failing), api.call("UpdateItem", failing)
    )
    assert essentials(lean_error) == essentials(botocore_error)
    assert lean_error.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert lean_error.response["Item"]["Attempts"] == {"N": "1"}  # ALL_OLD, as the store reads it


async def test_dynamodb_batch_write_and_unknown_table(
    aws: Aws, env: Env, http: aiohttp.ClientSession
) -> None:
    api = await json_api(aws.ddb, http)
    puts = [{"PutRequest": {"Item": {"RequestId": {"S": f"b-{i}"}}}} for i in range(3)]
    response = await api.call("BatchWriteItem", {"RequestItems": {env.table: puts}})
    assert response.get("UnprocessedItems") == {}
    scan = await aws.ddb.scan(TableName=env.table)
    assert {i["RequestId"]["S"] for i in scan["Items"]} == {"b-0", "b-1", "b-2"}

    missing = {"TableName": "no-such-" + uuid.uuid4().hex[:8], "Key": {"RequestId": {"S": "x"}}}
    botocore_error, lean_error = await both_raise(
        aws.ddb.get_item(**missing), api.call("GetItem", missing)
    )
    assert essentials(lean_error) == essentials(botocore_error)
    assert lean_error.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_sqs_receive_delete_and_query_compatible_errors(
    aws: Aws, env: Env, http: aiohttp.ClientSession
) -> None:
    api = await json_api(aws.sqs, http)
    await aws.sqs.send_message(QueueUrl=env.queue_url, MessageBody='{"ü": "snowman ☃"}')
    received = await api.call(
        "ReceiveMessage",
        {
            "QueueUrl": env.queue_url,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 1,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        },
    )
    [message] = received["Messages"]
    assert message["Body"] == '{"ü": "snowman ☃"}'
    assert message["Attributes"] == {"ApproximateReceiveCount": "1"}
    deleted = await api.call(
        "DeleteMessageBatch",
        {
            "QueueUrl": env.queue_url,
            "Entries": [{"Id": "0", "ReceiptHandle": message["ReceiptHandle"]}],
        },
    )
    assert deleted["Successful"] == [{"Id": "0"}]
    attributes = await aws.sqs.get_queue_attributes(
        QueueUrl=env.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    assert set(attributes["Attributes"].values()) == {"0"}

    gone = {"QueueUrl": env.queue_url + "-gone", "MaxNumberOfMessages": 1}
    botocore_error, lean_error = await both_raise(
        aws.sqs.receive_message(**gone), api.call("ReceiveMessage", gone)
    )
    assert essentials(lean_error) == essentials(botocore_error)
    assert lean_error.response["Error"]["Code"] == botocore_error.response["Error"]["Code"]


async def test_sms_send_and_validation_error(
    sms: Any, sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    api = await json_api(sms, http)
    params = {
        "DestinationPhoneNumber": "+12065550100",
        "OriginationIdentity": "+18005550100",
        "MessageBody": "hello",
        "Context": {"campaign": "c-1"},
    }
    by_botocore = await sms.send_media_message(**params)
    by_lean = await api.call("SendMediaMessage", params)
    assert by_lean.keys() == by_botocore.keys() - {"ResponseMetadata"}
    assert by_lean["MessageId"] and by_lean["MessageId"] != by_botocore["MessageId"]
    sends = await sandbox.sends()
    assert [s["params"] for s in sends[-2:]] == [params, params]

    invalid = {"DestinationPhoneNumber": "+12065550100", "OriginationIdentity": "+18005550100"}
    botocore_error, lean_error = await both_raise(
        sms.send_media_message(**invalid), api.call("SendMediaMessage", invalid)
    )
    assert essentials(lean_error) == essentials(botocore_error)
    assert lean_error.response["Error"]["Code"] == "ValidationException"
    assert lean_error.response["Reason"] == botocore_error.response["Reason"]


async def test_transient_errors_retried_within_max_attempts(
    sms: Any, sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await sandbox.configure(fault_rate=1.0)
    api = await json_api(sms, http, max_attempts=3)
    params = {
        "DestinationPhoneNumber": "+12065550100",
        "OriginationIdentity": "+18005550100",
        "MessageBody": "hello",
    }
    with pytest.raises(ClientError) as failed:
        await api.call("SendMediaMessage", params)
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] >= 500
    assert failed.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert (await sandbox.stats())["calls"] == 3

    await sandbox.configure(fault_rate=0.0, account_error="AccessDeniedException")
    with pytest.raises(ClientError) as denied:  # not retryable: one more call only
        await api.call("SendMediaMessage", params)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert (await sandbox.stats())["calls"] == 4


async def test_connection_refused_is_botocores_endpoint_connection_error(
    servers: dict[str, str], http: aiohttp.ClientSession
) -> None:
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1)
    async with get_session().create_client(
        SMS_SERVICE, endpoint_url="http://127.0.0.1:9", config=config
    ) as unreachable:
        api = await json_api(unreachable, http, max_attempts=2)
        params = {"DestinationPhoneNumber": "+12065550100", "OriginationIdentity": "x"}
        with pytest.raises(EndpointConnectionError):
            await unreachable.send_media_message(**params)
        with pytest.raises(EndpointConnectionError):
            await api.call("SendMediaMessage", params)


async def test_a_corrupted_dynamodb_answer_is_retried_then_reported(
    http: aiohttp.ClientSession,
) -> None:
    """DynamoDB's x-amz-crc32 covers the body; a mismatch is transient, as in botocore."""
    from aiohttp import web

    calls = 0

    async def corrupt(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"Item": {}}, headers={"x-amz-crc32": "12345"})

    async with (
        http_server(corrupt) as url,
        get_session().create_client("dynamodb", endpoint_url=url) as ddb,
    ):
        api = await json_api(ddb, http, max_attempts=3)
        with pytest.raises(ClientError) as failed:
            await api.call("GetItem", {"TableName": "t", "Key": {"RequestId": {"S": "x"}}})
    assert failed.value.response["Error"]["Code"] == "CrcMismatch"
    assert calls == 3


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("https://dynamodb.eu-west-1.amazonaws.com", None),
        ("http://127.0.0.1:4566/", None),
        ("http://gateway.internal/aws/dynamodb", "has a path"),
        ("unix:///var/run/x", "not an http(s) URL"),
    ],
)
def test_endpoint_problem(endpoint: str, problem: str | None) -> None:
    found = endpoint_problem(endpoint)
    assert (found is None) if problem is None else (problem in (found or ""))


async def test_an_endpoint_with_a_path_stays_on_aiobotocore(servers: dict[str, str]) -> None:
    settings = Settings(queue_url="http://127.0.0.1:9/q", table="t")
    session = get_session()
    async with AsyncExitStack() as stack:
        sqs = await stack.enter_async_context(session.create_client("sqs"))
        ddb = await stack.enter_async_context(session.create_client("dynamodb"))
        sms = await stack.enter_async_context(
            session.create_client(SMS_SERVICE, endpoint_url="http://127.0.0.1:9/gateway/sms")
        )
        clients = AwsClients(sqs=sqs, dynamodb=ddb, sms=sms, session=session)
        with capture_logs() as logs:
            hot = await open_fast_path(stack, settings, clients)
        assert hot.sms is sms
        assert isinstance(hot.sqs, SqsCalls) and isinstance(hot.dynamodb, DynamoDBCalls)
        assert [e["event"] for e in logs] == ["fast_path_unavailable"]
        off = await open_fast_path(
            stack,
            Settings(queue_url="http://127.0.0.1:9/q", table="t", fast_path=False),
            clients,
        )
        assert (off.sqs, off.dynamodb, off.sms) == (sqs, ddb, sms)
