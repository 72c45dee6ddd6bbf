"""The fault proxy itself, seen through real aiobotocore clients in front of moto and the
sandbox, and through its admin endpoint and command line."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from support import Env, Sandbox

from worker.devstack.faultproxy import FaultProxy
from worker.devstack.stack import start_server

NO_RETRIES = AioConfig(retries={"total_max_attempts": 1}, read_timeout=2, connect_timeout=2)


async def test_each_mode_as_a_client_sees_it(servers: dict[str, str], env: Env) -> None:
    async with (
        FaultProxy(servers["moto"]) as proxy,
        get_session().create_client("dynamodb", endpoint_url=proxy.url, config=NO_RETRIES) as ddb,
        get_session().create_client("sqs", endpoint_url=proxy.url, config=NO_RETRIES) as sqs,
    ):
        key = {"RequestId": {"S": "p-1"}}
        await ddb.put_item(TableName=env.table, Item=key)  # forwarded untouched
        assert (await ddb.get_item(TableName=env.table, Key=key))["Item"] == key

        proxy.inject("throttle", 30)
        with pytest.raises(ClientError) as caught:
            await ddb.get_item(TableName=env.table, Key=key)
        assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
        with pytest.raises(ClientError) as caught:
            await sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["All"])
        assert caught.value.response["Error"]["Code"] == "RequestThrottled"

        proxy.inject("5xx", 30)
        with pytest.raises(ClientError) as caught:
            await ddb.get_item(TableName=env.table, Key=key)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert caught.value.response["Error"]["Code"] == "InternalServerError"
        with pytest.raises(ClientError) as caught:
            await sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["All"])
        assert caught.value.response["Error"]["Code"] == "InternalError"  # query-compatible

        proxy.inject("reset", 30)
        with pytest.raises(BotoConnectionError):
            await ddb.get_item(TableName=env.table, Key=key)

        proxy.inject("unprocessed", 30)
        put = {"PutRequest": {"Item": {"RequestId": {"S": "p-2"}}}}
        answer = await ddb.batch_write_item(RequestItems={env.table: [put]})
        assert answer["UnprocessedItems"] == {env.table: [put]}
        assert (await ddb.get_item(TableName=env.table, Key=key))["Item"] == key  # others pass

        proxy.inject("cut", 30, operations={"PutItem"})
        with pytest.raises(BotoConnectionError):
            await ddb.put_item(TableName=env.table, Item={"RequestId": {"S": "p-3"}})
        proxy.clear()
        got = await ddb.get_item(TableName=env.table, Key={"RequestId": {"S": "p-3"}})
        assert "Item" in got  # the upstream acted on the cut call

        proxy.inject("hold", 0.5)
        with pytest.raises((ReadTimeoutError, BotoConnectionError)):
            await ddb.get_item(TableName=env.table, Key=key)
        await asyncio.sleep(0.6)  # the fault ended by itself
        assert proxy.active is None
        assert (await ddb.get_item(TableName=env.table, Key=key))["Item"] == key
        assert proxy.faulted["throttle"] == 2 and proxy.faulted["reset"] == 1


def _send(sms: Any, n: int) -> Any:
    return sms.send_media_message(
        DestinationPhoneNumber=f"+1206555{n:04d}",
        OriginationIdentity="+18005550100",
        MessageBody=f"hello {n}",
    )


async def test_sms_api_modes_and_what_reached_the_sandbox(sandbox: Sandbox) -> None:
    async with (
        FaultProxy(sandbox.url, service="sms") as proxy,
        get_session().create_client(
            "pinpoint-sms-voice-v2", endpoint_url=proxy.url, config=NO_RETRIES
        ) as sms,
    ):
        assert "MessageId" in await _send(sms, 1)

        proxy.inject("throttle", 30)
        with pytest.raises(ClientError) as caught:
            await _send(sms, 2)
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"

        proxy.inject("5xx", 30)
        with pytest.raises(ClientError) as caught:
            await _send(sms, 3)
        assert caught.value.response["Error"]["Code"] == "InternalServerException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500

        proxy.inject("reset", 30)
        with pytest.raises(BotoConnectionError):
            await _send(sms, 4)

        proxy.inject("cut", 30, operations={"SendMediaMessage"})
        with pytest.raises(BotoConnectionError):
            await _send(sms, 5)

        proxy.inject("reset", 30, operations={"SendTextMessage"})  # not this operation
        assert "MessageId" in await _send(sms, 6)
        with pytest.raises(ValueError, match="DynamoDB"):
            proxy.inject("unprocessed", 30)
        proxy.clear()

    # Only the forwarded calls reached the sandbox: the cut one was accepted, answer lost.
    sent = await sandbox.sends_by_destination()
    assert sent == {"+12065550001": 1, "+12065550005": 1, "+12065550006": 1}
    assert proxy.seen["SendMediaMessage"] == 6
    assert proxy.faulted_by_operation == {"SendMediaMessage": 4}
    assert proxy.faulted == {"throttle": 1, "5xx": 1, "reset": 1, "cut": 1}


async def test_a_fault_expires_by_itself_and_released_holds_reset(
    servers: dict[str, str], env: Env
) -> None:
    async with (
        FaultProxy(servers["moto"], service="sqs") as proxy,
        get_session().create_client(
            "sqs",
            endpoint_url=proxy.url,
            config=AioConfig(retries={"total_max_attempts": 1}, read_timeout=10),
        ) as sqs,
    ):
        proxy.inject("hold", 1.0, operations={"GetQueueAttributes"})
        started = asyncio.get_running_loop().time()
        with pytest.raises(BotoConnectionError):  # held, then reset when the fault ended
            await sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["All"])
        assert 0.8 < asyncio.get_running_loop().time() - started < 8
        assert proxy.active is None
        await sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["All"])
        assert proxy.faulted_by_operation == {"GetQueueAttributes": 1}


async def test_the_admin_endpoint_and_the_command_line(servers: dict[str, str], env: Env) -> None:
    argv = [sys.executable, "-m", "worker.devstack.faultproxy", "--upstream", servers["moto"]]
    server = await start_server("faultproxy", argv, "faultproxy_ready")
    try:
        async with (
            aiohttp.ClientSession() as http,
            get_session().create_client(
                "dynamodb", endpoint_url=server.url, config=NO_RETRIES
            ) as ddb,
        ):
            admin = f"{server.url}/_faultproxy"
            async with http.post(f"{admin}/inject", json={"mode": "nope", "duration_s": 1}) as r:
                assert r.status == 400 and "unknown fault mode" in (await r.json())["error"]
            spec = {"mode": "throttle", "duration_s": 60, "operations": ["DescribeTable"]}
            async with http.post(f"{admin}/inject", json=spec) as r:
                assert r.status == 200
            with pytest.raises(ClientError) as caught:
                await ddb.describe_table(TableName=env.table)
            code = caught.value.response["Error"]["Code"]
            assert code == "ProvisionedThroughputExceededException"
            await ddb.get_item(TableName=env.table, Key={"RequestId": {"S": "x"}})  # unaffected
            async with http.get(f"{admin}/stats") as r:
                stats = await r.json()
            assert stats["active"] == "throttle"
            assert stats["faulted_by_operation"] == {"DescribeTable": 1}
            assert stats["seen"] == {"DescribeTable": 1, "GetItem": 1}
            async with http.post(f"{admin}/clear") as r:
                assert (await r.json())["active"] is None
            await ddb.describe_table(TableName=env.table)
    finally:
        await server.stop()
