"""The send queue and its dead-letter queue, created or brought to what the worker needs."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from worker.aws.errors import error_code
from worker.resources.types import (
    _NO_QUEUE,
    _QUEUE_EXISTS,
    CREATED,
    EXISTS,
    RETENTION_S,
    UPDATED,
    Step,
)


def queue_attributes(
    dlq_arn: str, *, max_receive_count: int, visibility_timeout_s: int
) -> dict[str, str]:
    return {
        "VisibilityTimeout": str(visibility_timeout_s),
        "MessageRetentionPeriod": RETENTION_S,
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        ),
    }


def _same(attribute: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if attribute == "RedrivePolicy":
        try:
            have, want = json.loads(current), json.loads(wanted)
            return bool(
                have.get("deadLetterTargetArn") == want["deadLetterTargetArn"]
                and int(have.get("maxReceiveCount", 0)) == int(want["maxReceiveCount"])
            )
        except (ValueError, TypeError, AttributeError):
            return False
    return current == wanted


async def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])
    except ClientError as exc:
        if error_code(exc) in _NO_QUEUE:
            return None
        raise


async def _one_queue(
    sqs: Any, what: str, name: str, attributes: dict[str, str]
) -> tuple[str, str, Step, set[str]]:
    """The queue ``name`` with ``attributes``: its URL, its ARN, what was done and the
    attributes that were changed."""
    url = await _queue_url(sqs, name)
    state, detail, differ = EXISTS, "", {}
    if url is None:
        try:
            url = str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])
            state = CREATED
        except ClientError as exc:  # created by someone else since we looked
            if error_code(exc) not in _QUEUE_EXISTS:
                raise
            url = str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])
    current = (
        await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", *attributes])
    )["Attributes"]
    if state == EXISTS:
        differ = {k: v for k, v in attributes.items() if not _same(k, current.get(k), v)}
        if differ:
            await sqs.set_queue_attributes(QueueUrl=url, Attributes=differ)
            state, detail = UPDATED, "set " + ", ".join(sorted(differ))
    return url, str(current["QueueArn"]), Step(what, url, state, detail), set(differ)


async def provision_queue(
    sqs: Any, name: str, *, max_receive_count: int = 5, visibility_timeout_s: int = 120
) -> tuple[str, str, list[Step]]:
    """The queue ``name`` with a dead-letter queue ``name-dlq`` and a redrive policy to it:
    both URLs and the steps."""
    dlq_url, dlq_arn, dlq_step, _ = await _one_queue(
        sqs, "dead-letter queue", f"{name}-dlq", {"MessageRetentionPeriod": RETENTION_S}
    )
    attributes = queue_attributes(
        dlq_arn, max_receive_count=max_receive_count, visibility_timeout_s=visibility_timeout_s
    )
    queue_url, _, queue_step, changed = await _one_queue(sqs, "queue", name, attributes)
    if queue_step.state == CREATED:
        redrive_state = CREATED
    else:
        redrive_state = UPDATED if "RedrivePolicy" in changed else EXISTS
    redrive = Step(
        "redrive policy", f"maxReceiveCount {max_receive_count} -> {name}-dlq", redrive_state
    )
    return queue_url, dlq_url, [queue_step, dlq_step, redrive]


async def ensure_queue(
    sqs: Any, name: str, *, max_receive_count: int = 5, visibility_timeout_s: int = 120
) -> tuple[str, str]:
    """The queue ``name`` with a dead-letter queue ``name-dlq``; returns both URLs."""
    queue_url, dlq_url, _ = await provision_queue(
        sqs, name, max_receive_count=max_receive_count, visibility_timeout_s=visibility_timeout_s
    )
    return queue_url, dlq_url


# --- the table ----------------------------------------------------------------------------
