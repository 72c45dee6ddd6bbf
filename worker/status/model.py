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

    SENDING / RETRYING / FAILED(AMBIGUOUS, RETRIES_EXHAUSTED) ──delivery event──▶ SENT

    FAILED/RETRIES_EXHAUSTED ──replay (claim)──▶ SENDING      (Replays + 1)
                             └──replay, NotAfter passed──▶ EXPIRED

A ``FAILED`` record is final except one kind: ``RETRIES_EXHAUSTED`` says only that the
request ran out of receives (the dead-letter queue holds it), not that it cannot be sent, so a
delivery that comes back (redriven, enqueued again) *re-opens* it. Every other ``FAILED``
(refused by the API, ``INVALID_REQUEST``: both deterministic), ``SENT`` and ``EXPIRED`` stay
final: a delivery of such a request is a duplicate.
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


#: Final statuses: a redelivery of such a request is a duplicate, except a replayable one.
TERMINAL: frozenset[Status] = frozenset({Status.SENT, Status.FAILED, Status.EXPIRED})
#: The one ``ErrorCode`` whose ``FAILED`` a later delivery re-opens (see :func:`is_replayable`).
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
#: Which status may follow which (``None``: no record yet). SENDING may follow SENDING when the
#: earlier claim's lease has passed (the store's condition checks the lease).
TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({Status.SENDING, Status.FAILED, Status.EXPIRED}),
    Status.RETRYING: frozenset({Status.SENDING, Status.SENT, Status.FAILED, Status.EXPIRED}),
    Status.SENDING: frozenset({Status.SENDING, Status.SENT, Status.RETRYING, Status.FAILED}),
    # RETRYING -> SENT and FAILED/AMBIGUOUS -> SENT: a delivery event proved the send
    # (:func:`proves_send`); no call is made for either.
    Status.SENT: frozenset(),
    Status.FAILED: frozenset(),
    Status.EXPIRED: frozenset(),
}
#: What may follow a replayable record (``FAILED``/``RETRIES_EXHAUSTED``): a new claim, or,
#: when the request's ``NotAfter`` passed meanwhile, ``EXPIRED``. Not an invalid ``FAILED``:
#: the request was valid, so an invalid body under its ``RequestId`` is a bad copy.
REOPENED: frozenset[Status] = frozenset({Status.SENDING, Status.EXPIRED})


def parse_status(value: object) -> Status | None:
    """The record's ``Status`` attribute as a ``Status`` (``None``: absent or unknown)."""
    try:
        return Status(str(value)) if value is not None else None
    except ValueError:
        return None


def is_replayable(status: str | None, error_code: str | None) -> bool:
    """Does a later delivery of a request in this state send it again? Only a request that
    ran out of receives (``FAILED``/``RETRIES_EXHAUSTED``): it was never refused."""
    return status == Status.FAILED and error_code == RETRIES_EXHAUSTED


def may_follow(before: Status | None, after: Status, error_code: str | None = None) -> bool:
    """May ``after`` be written over a record in ``before`` (with ``error_code``)?"""
    if is_replayable(before, error_code):
        return after in REOPENED
    return after in TRANSITIONS[before]


def is_duplicate(
    status: str | None, error_code: str | None = None, attempted: Status = Status.SENDING
) -> bool:
    """May a delivery of a request in this state be skipped (deleted, no call)? ``attempted``
    is what the delivery would write: a claim (``SENDING``), or a status reached without a
    call (an invalid copy's ``FAILED``, ``EXPIRED``)."""
    final = parse_status(status)
    return final in TERMINAL and not may_follow(final, attempted, error_code)


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
    RATE_SHARE = "rateshare#"  # a rate-limit key's leases (worker.sending.sharing)


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
    channel: str | None = None  # MMS or SMS, once the body names a valid one
    message_parts: int | None = None  # the parts its send reserves (an MMS is 1)


@dataclass(frozen=True, slots=True)
class Claim:
    """This worker owns the request until ``lease_until_ms``."""

    request_id: str
    token: str
    attempts: int  # including the call about to be made
    lease_until_ms: int
    # The record as it stood before the claim ({}: new): what the reclaim policy asks of it.
    prior: dict[str, Any] = field(default_factory=dict)
    reopened: bool = False  # this claim re-opened a FAILED/RETRIES_EXHAUSTED record (a replay)

    def attempts_after(self, calls: int) -> int:
        """The record's ``Attempts`` once ``calls`` calls were made under this claim (0: the
        claim's counted call was not made, e.g. the reclaim policy held it back)."""
        return self.attempts + calls - 1

    @property
    def ambiguous_since_ms(self) -> int | None:
        """When this request's last send may have gone out unseen (epoch ms), from the record
        as the claim found it: its ``AmbiguousAt`` (a call that got no answer after the
        request was written), or a ``SENDING`` whose lease had passed (its worker died or
        stopped after the call; the attempt's time is that claim's ``UpdatedAt``). ``None``:
        not ambiguous."""
        at = self.prior.get("AmbiguousAt")
        if isinstance(at, int | float):
            return int(at)
        if self.prior.get("Status") != Status.SENDING:
            return None
        try:
            return int(datetime.fromisoformat(str(self.prior["UpdatedAt"])).timestamp() * 1000)
        except (KeyError, ValueError):
            return int(self.prior.get("LeaseUntil") or 0) or None


@dataclass(frozen=True, slots=True)
class ClaimRefused:
    """The conditional write was refused: the record, as it stood, is somebody else's (a
    final status, or a live claim of another delivery)."""

    record: dict[str, Any]
    attempted: Status = Status.SENDING  # what the refused write would have set

    @property
    def status(self) -> Status | None:
        return parse_status(self.record.get("Status"))

    @property
    def is_duplicate(self) -> bool:
        return is_duplicate(self.status, self.record.get("ErrorCode"), self.attempted)

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
    # A send that may have gone out unseen (epoch ms): kept on the record as ``AmbiguousAt``
    # for the reclaim policy (None: the write removes it).
    ambiguous_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """A status reached without a call was written; ``reopened``: over a replayable record."""

    reopened: bool = False


# -- delivery events (contract section 4) ---------------------------------------------------
#: ``ErrorCode`` of a request whose send may have gone out unseen, under the ``never`` reclaim
#: policy (final, unless a delivery event shows it was sent).
AMBIGUOUS = "AMBIGUOUS"


class DeliveryStatus(enum.StrEnum):
    """What delivery events say of a sent request, in rank order: an event never moves a
    record's ``DeliveryStatus`` down (:func:`delivery_rank`)."""

    PENDING = "PENDING"  # queued or pending at the provider
    ACCEPTED = "ACCEPTED"  # the carrier took it (``*_SUCCESSFUL``)
    UNDELIVERED = "UNDELIVERED"  # a final failure event
    DELIVERED = "DELIVERED"  # the handset got it


_RANK = {status: rank for rank, status in enumerate(DeliveryStatus, start=1)}
#: Event type suffixes (after ``TEXT_``/``MEDIA_``) and the status each one sets; every other
#: type of the API is a failure (``UNDELIVERED``), ``MEDIA_FILE_*`` included.
_EFFECTS = {
    "QUEUED": DeliveryStatus.PENDING,
    "PENDING": DeliveryStatus.PENDING,
    "SUCCESSFUL": DeliveryStatus.ACCEPTED,
    "DELIVERED": DeliveryStatus.DELIVERED,
}
#: The failure types of the API (after the prefix); a type outside these and ``_EFFECTS`` is
#: not an event this version knows, and it is counted, not applied.
FAILURE_EVENTS: frozenset[str] = frozenset(
    {
        "INVALID", "INVALID_MESSAGE", "UNREACHABLE", "CARRIER_UNREACHABLE", "BLOCKED",
        "CARRIER_BLOCKED", "SPAM", "UNKNOWN", "TTL_EXPIRED", "PROTECT_BLOCKED",
    }
)  # fmt: skip
MEDIA_FAILURE_EVENTS: frozenset[str] = frozenset(
    {"MEDIA_FILE_INACCESSIBLE", "MEDIA_FILE_TYPE_UNSUPPORTED", "MEDIA_FILE_SIZE_EXCEEDED"}
)
EVENT_PREFIXES = ("TEXT_", "MEDIA_")
#: Records an event proves were sent (the call went out although no SENT was written): they
#: become ``SENT`` with the event's ``messageId`` and are never sent again.
SEND_PROVEN_FROM: frozenset[Status] = frozenset({Status.SENDING, Status.RETRYING, Status.FAILED})


def delivery_rank(status: str | None) -> int:
    """0 for no (or an unknown) ``DeliveryStatus``, then PENDING < ACCEPTED < UNDELIVERED <
    DELIVERED."""
    try:
        return _RANK[DeliveryStatus(status)] if status is not None else 0
    except ValueError:
        return 0


def lower_delivery_statuses(status: DeliveryStatus) -> tuple[DeliveryStatus, ...]:
    """The statuses an event setting ``status`` may replace (ranked strictly below it)."""
    return tuple(s for s in DeliveryStatus if _RANK[s] < _RANK[status])


def delivery_effect(event_type: str) -> DeliveryStatus | None:
    """The ``DeliveryStatus`` an event of this ``eventType`` sets; ``None``: not a type of the
    API (``MEDIA_FILE_*`` only with the ``MEDIA_`` prefix)."""
    for prefix in EVENT_PREFIXES:
        if event_type.startswith(prefix):
            suffix = event_type.removeprefix(prefix)
            if suffix in _EFFECTS:
                return _EFFECTS[suffix]
            if suffix in FAILURE_EVENTS:
                return DeliveryStatus.UNDELIVERED
            if prefix == "MEDIA_" and event_type in MEDIA_FAILURE_EVENTS:
                return DeliveryStatus.UNDELIVERED
    return None


def proves_send(status: str | None, error_code: str | None) -> bool:
    """Does an event for a record in this state make it ``SENT`` (a send went out although
    ``SENT`` was never written)? ``SENDING`` (a call in flight, or a worker that died after
    it), ``RETRYING``, ``FAILED``/``AMBIGUOUS``, and ``FAILED``/``RETRIES_EXHAUSTED`` (so a
    replay from the dead-letter queue does not send it again). Never a refused ``FAILED``."""
    parsed = parse_status(status)
    if parsed not in SEND_PROVEN_FROM:
        return False
    return parsed is not Status.FAILED or error_code in (AMBIGUOUS, RETRIES_EXHAUSTED)
