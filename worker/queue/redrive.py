"""The queue's redrive policy: how many receives a message gets before the dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

from worker.logs import get_logger

log = get_logger(__name__)

DEFAULT_MAX_RECEIVE_COUNT = 10


async def max_receive_count(sqs: Any, queue_url: str, configured: int | None) -> int:
    """``configured`` if set, else the queue's redrive ``maxReceiveCount`` (10, with a
    warning, when the queue has no dead-letter queue)."""
    if configured is not None:
        return configured
    response = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    policy = (response.get("Attributes") or {}).get("RedrivePolicy")
    if not policy:
        log.warning(
            "no_redrive_policy",
            max_receive_count=DEFAULT_MAX_RECEIVE_COUNT,
            action="give the queue a dead-letter queue (sms-worker init does)",
        )
        return DEFAULT_MAX_RECEIVE_COUNT
    return int(json.loads(policy)["maxReceiveCount"])
