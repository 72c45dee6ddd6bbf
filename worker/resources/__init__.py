"""Create, idempotently, what the worker needs: the queue, its dead-letter queue, the table.

Every step looks first and changes only what differs from what is asked, so running it twice
changes nothing the second time; each step reports what it found or did (:class:`Step`).
"""

from __future__ import annotations

from typing import Any

from worker.resources.queues import ensure_queue, provision_queue, queue_attributes
from worker.resources.table import ensure_table, provision_table
from worker.resources.types import (
    KEY,
    RETENTION_S,
    SKIPPED,
    TTL_ATTRIBUTE,
    Provisioned,
    ResourceConflict,
    Resources,
    Step,
)

__all__ = [
    "KEY",
    "RETENTION_S",
    "SKIPPED",
    "TTL_ATTRIBUTE",
    "Provisioned",
    "ResourceConflict",
    "Resources",
    "Step",
    "ensure_queue",
    "ensure_resources",
    "ensure_table",
    "provision",
    "provision_queue",
    "provision_table",
    "queue_attributes",
]


async def provision(
    sqs: Any,
    ddb: Any,
    *,
    queue_name: str,
    table: str,
    max_receive_count: int = 5,
    visibility_timeout_s: int = 120,
    point_in_time_recovery: bool = False,
) -> Provisioned:
    queue_url, dlq_url, queue_steps = await provision_queue(
        sqs,
        queue_name,
        max_receive_count=max_receive_count,
        visibility_timeout_s=visibility_timeout_s,
    )
    table_steps = await provision_table(ddb, table, point_in_time_recovery=point_in_time_recovery)
    return Provisioned(Resources(queue_url, dlq_url, table), (*queue_steps, *table_steps))


async def ensure_resources(
    sqs: Any, ddb: Any, *, queue_name: str, table: str, max_receive_count: int = 5
) -> Resources:
    provisioned = await provision(
        sqs, ddb, queue_name=queue_name, table=table, max_receive_count=max_receive_count
    )
    return provisioned.resources
