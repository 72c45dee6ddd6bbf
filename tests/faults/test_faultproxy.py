"""The fault proxy itself, seen through real aiobotocore clients in front of moto."""

from __future__ import annotations

import asyncio

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from support import Env

from worker.devstack.faultproxy import FaultProxy

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
