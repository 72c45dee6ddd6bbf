"""Put send requests on the worker's queue: a Python API and ``sms-worker enqueue``.

``async with Enqueuer(queue_url) as q: await q.put(request)``, or
``result = await enqueue(queue_url, requests)``. Requests are ``worker.model.SendRequest``
instances or dicts of contract keys, validated with the worker's own model before anything
is sent. The names below are imported on first use, so ``sms-worker`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.producer.api import Enqueuer, enqueue, region_of
    from worker.producer.batch import RetryPolicy
    from worker.producer.outcomes import (
        EnqueueError,
        EnqueueResult,
        EntryFailure,
        QueueUnavailable,
    )
    from worker.producer.requests import (
        InvalidSendRequest,
        PreparedRequest,
        prepare_request,
        validate_request,
    )

_WHERE = {
    "Enqueuer": "api",
    "enqueue": "api",
    "region_of": "api",
    "RetryPolicy": "batch",
    "EnqueueError": "outcomes",
    "EnqueueResult": "outcomes",
    "EntryFailure": "outcomes",
    "QueueUnavailable": "outcomes",
    "InvalidSendRequest": "requests",
    "PreparedRequest": "requests",
    "prepare_request": "requests",
    "validate_request": "requests",
}

__all__ = [
    "EnqueueError",
    "EnqueueResult",
    "Enqueuer",
    "EntryFailure",
    "InvalidSendRequest",
    "PreparedRequest",
    "QueueUnavailable",
    "RetryPolicy",
    "enqueue",
    "prepare_request",
    "region_of",
    "validate_request",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'worker.producer' has no attribute {name!r}")
    return getattr(importlib.import_module(f"worker.producer.{module}"), name)
