"""Visibility extension of held messages, against moto's SQS over HTTP."""

from __future__ import annotations

import asyncio

from support import Aws, Env, enqueue, request

from worker.metrics import Metrics
from worker.queue.acks import AckBatcher
from worker.queue.extender import VisibilityExtender
from worker.queue.message import QueueMessage


async def test_held_messages_are_extended_and_forgotten_ones_are_not(aws: Aws, env: Env) -> None:
    await enqueue(aws.sqs, env.queue_url, [request(1), request(2)])
    received = (
        await aws.sqs.receive_message(
            QueueUrl=env.queue_url,
            MaxNumberOfMessages=2,
            VisibilityTimeout=3,
            WaitTimeSeconds=1,
        )
    )["Messages"]
    assert len(received) == 2
    kept, dropped = (QueueMessage.from_sqs(m) for m in received)
    async with AckBatcher(aws.sqs, env.queue_url, Metrics(), flush_ms=10) as acks:
        extender = VisibilityExtender(acks, visibility_timeout_s=3, interval_s=0.2)
        extender.track(kept)
        extender.track(dropped)
        extender.forget(dropped)  # acknowledged: no longer ours to extend
        extender.start()
        await asyncio.sleep(4.5)  # past the original 3 s visibility
        visible = (
            await aws.sqs.receive_message(
                QueueUrl=env.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
            )
        ).get("Messages", [])
        await extender.close()
    assert [m["MessageId"] for m in visible] == [dropped.message_id]
    assert extender.extended_total >= 1
