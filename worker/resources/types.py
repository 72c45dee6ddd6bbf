"""What provisioning reports: the resources, each step's outcome, the conflicts."""

from __future__ import annotations

from dataclasses import dataclass

from worker.status.model import REQUEST_KEY

RETENTION_S = "1209600"  # 14 days, SQS's maximum, for both queues
TTL_ATTRIBUTE = "ExpiresAt"
KEY = REQUEST_KEY

CREATED, ENABLED, UPDATED, EXISTS, SKIPPED = "created", "enabled", "updated", "exists", "skipped"
_CHANGES = frozenset({CREATED, ENABLED, UPDATED})
_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_QUEUE_EXISTS = ("QueueAlreadyExists", "QueueNameExists")


@dataclass(frozen=True, slots=True)
class Resources:
    queue_url: str
    dlq_url: str
    table: str


@dataclass(frozen=True, slots=True)
class Step:
    """What one step found or did: ``state`` is one of created, enabled, updated, exists,
    skipped (the endpoint does not support it; ``detail`` says why)."""

    what: str
    name: str
    state: str
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.state in _CHANGES


@dataclass(frozen=True, slots=True)
class Provisioned:
    resources: Resources
    steps: tuple[Step, ...]

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps)


class ResourceConflict(RuntimeError):
    """A resource of that name exists but cannot be made what the worker needs."""
