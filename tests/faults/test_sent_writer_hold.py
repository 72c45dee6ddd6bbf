"""A SENT record is held through a DynamoDB fault, never dropped; only abandon() gives up."""

from __future__ import annotations

import asyncio

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from support import Env

from worker.devstack.faultproxy import FaultProxy
from worker.health import DYNAMODB, DependencyHealth
from worker.status.codec import decode_item
from worker.status.model import Claim, RecordFields
from worker.status.sent_writer import SentAbandoned, SentWriter

# No client retries: the writer's own holding is what is tested.
ONE_CALL = AioConfig(retries={"total_max_attempts": 1})


def _claim(n: int) -> tuple[Claim, RecordFields]:
    return Claim(f"held-{n}", "tok", 1, 0, {}), RecordFields(f"held-{n}", f"m-{n}", 1)


@pytest.mark.parametrize("mode", ["5xx", "reset", "throttle"])
async def test_a_sent_record_is_written_once_dynamodb_takes_it(
    servers: dict[str, str], env: Env, mode: str
) -> None:
    health = DependencyHealth()
    async with (
        FaultProxy(servers["moto"]) as proxy,
        get_session().create_client("dynamodb", endpoint_url=proxy.url, config=ONE_CALL) as ddb,
    ):
        proxy.inject(mode, 4.0)
        async with SentWriter(ddb, env.table, health=health) as writer:
            writes = [
                asyncio.create_task(writer.write(*_claim(n), f"mid-{n}", 1)) for n in range(3)
            ]
            await asyncio.sleep(2.0)
            assert not any(w.done() for w in writes)  # held, not failed
            await asyncio.wait_for(asyncio.gather(*writes), timeout=30)
        assert health.errors_total(DYNAMODB) >= 1
        assert sum(health.failures.values()) >= 1
        assert not health.failing(DYNAMODB)  # recovered by itself
        item = await ddb.get_item(TableName=env.table, Key={"RequestId": {"S": "held-1"}})
    record = decode_item(item["Item"])
    assert record["Status"] == "SENT" and record["MessageId"] == "mid-1"
    assert proxy.faulted[mode] >= 1


async def test_only_abandon_gives_up_a_held_record(servers: dict[str, str], env: Env) -> None:
    async with (
        FaultProxy(servers["moto"]) as proxy,
        get_session().create_client("dynamodb", endpoint_url=proxy.url) as ddb,
    ):
        proxy.inject("5xx", 60.0)
        async with SentWriter(ddb, env.table) as writer:
            write = asyncio.create_task(writer.write(*_claim(9), "mid-9", 1))
            await asyncio.sleep(1.0)
            assert not write.done()
            writer.abandon()
            with pytest.raises(SentAbandoned):
                await asyncio.wait_for(write, timeout=10)
