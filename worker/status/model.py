"""The status record's state machine: one ``Status`` enum, its transitions, one named
predicate per question, and the table's key families.

A leaf: nothing here does I/O, so the handlers, the store, the campaign counters and the
operator tools all ask the same module (see docs/contract.md for the table's attributes).

::

    (new) ──claim──▶ SENDING ──accepted──▶ SENT
      │                 │ ├──refused────▶ FAILED
      │                 │ └──transient──▶ RETRYING ──claim──▶ SENDING
      │                 └──lease passed──▶ (claimable again)
      ├──invalid──▶ FAILED
      └──NotAfter passed──▶ EXPIRED
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The status table's partition key.
REQUEST_KEY = "RequestId"


class Status(enum.StrEnum):
    SENDING = "SENDING"  # claimed; a call may be in flight until LeaseUntil
    SENT = "SENT"  # the provider accepted it (or a dry run)
    RETRYING = "RETRYING"  # a transient failure; the message is back on the queue
    FAILED = "FAILED"  # final: refused, invalid or out of receives
    EXPIRED = "EXPIRED"  # final: NotAfter passed before it could be sent


#: Statuses no send can change: a redelivery of such a request is a duplicate.
TERMINAL: frozenset[Status] = frozenset({Status.SENT, Status.FAILED, Status.EXPIRED})
#: Statuses from which a new claim may start (besides a new request, and SENDING whose lease
#: has passed).
CLAIMABLE: frozenset[Status] = frozenset({Status.RETRYING})

#: Which status may follow which (``None``: no record yet). SENDING may follow SENDING when the
#: earlier claim's lease has passed (the store's condition checks the lease).
TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({Status.SENDING, Status.FAILED, Status.EXPIRED}),
    Status.RETRYING: frozenset({Status.SENDING, Status.FAILED, Status.EXPIRED}),
    Status.SENDING: frozenset({Status.SENDING, Status.SENT, Status.RETRYING, Status.FAILED}),
    Status.SENT: frozenset(),
    Status.FAILED: frozenset(),
    Status.EXPIRED: frozenset(),
}


def parse_status(value: object) -> Status | None:
    """The record's ``Status`` attribute as a ``Status`` (``None``: absent or unknown)."""
    try:
        return Status(str(value)) if value is not None else None
    except ValueError:
        return None


def may_follow(before: Status | None, after: Status) -> bool:
    return after in TRANSITIONS[before]


def is_duplicate(status: str | None) -> bool:
    """May a delivery of a request in this status be skipped (deleted, no call)?"""
    return status in TERMINAL


def counts_as_done(status: str | None) -> bool:
    """Does a campaign's progress count a request in this status as done?"""
    return status in TERMINAL


def counted_statuses() -> tuple[Status, ...]:
    """The statuses a campaign's counter item keeps a count of, in display order."""
    return (Status.SENT, Status.FAILED, Status.EXPIRED)


class KeyFamily(enum.StrEnum):
    """Items of the status table that are not requests: their ``RequestId`` prefix.
    Producers may not use a ``RequestId`` starting with one of these."""

    CAMPAIGN = "campaign#"  # a campaign's counters and expected count


def is_reserved_key(request_id: str) -> bool:
    return any(request_id.startswith(prefix) for prefix in KeyFamily)


# -- the record's types ---------------------------------------------------------------------
def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RecordFields:
    """What the record copies from the request and its delivery (any may be unknown for an
    invalid request)."""

    request_id: str
    sqs_message_id: str
    receive_count: int
    campaign_id: str | None = None
    destination: str | None = None
    identity: str | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    """This worker owns the request until ``lease_until_ms``."""

    request_id: str
    token: str
    attempts: int  # including the call about to be made
    lease_until_ms: int
    record: dict[str, Any] = field(default_factory=dict)  # as the claim left it (raw)


@dataclass(frozen=True, slots=True)
class ClaimRefused:
    """The conditional write was refused: the record, as it stood, is somebody else's (a
    final status, or a live claim of another delivery)."""

    record: dict[str, Any]

    @property
    def status(self) -> Status | None:
        return parse_status(self.record.get("Status"))

    @property
    def is_duplicate(self) -> bool:
        return is_duplicate(self.status)

    @property
    def lease_until_ms(self) -> int:
        return int(self.record.get("LeaseUntil") or 0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A FAILED, RETRYING or EXPIRED status to write (SENT goes through SentWriter)."""

    status: Status
    error_code: str | None = None
    error_reason: str | None = None
    error_message: str | None = None
