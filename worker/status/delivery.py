"""Apply one delivery event to its request's record: idempotent and monotonic.

Each event is one conditional ``UpdateItem`` (a second one when the first is refused and the
record it hands back, ``ALL_OLD``, calls for another write). The rank condition
(:func:`wins`) orders events by (``DeliveryStatus`` rank, ``eventTimestamp``, ``eventType``),
so whatever the order, duplication or timing of a message's events, the record ends with the
highest one's status and attributes (:func:`apply_event` is the same rule as a pure function,
for the tests). Price, fee, parts and country are also filled from a lower event when the
record has none yet; nothing an event wrote is ever removed by a lower one.

An event for a record that is ``SENDING``, ``RETRYING`` or ``FAILED``/``AMBIGUOUS``
(:func:`worker.status.model.proves_send`) is proof of a send: the same write makes it
``SENT`` with the event's ``messageId``, so it is never sent again. A record that does not
exist yet is not created (the claim's condition needs a new record to have none): the event
is retried instead (:class:`Applied` ``MISSING``).

Conditional writes cannot be batched (``BatchWriteItem`` takes no conditions, and a
transaction is cancelled whole by one refused condition, which is the normal answer to a
duplicate): each event is its own call, made concurrently with the others by the runtime's
tasks; the deletes of their messages are batched.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.status.codec import decode_item
from worker.status.model import (
    DeliveryStatus,
    Status,
    delivery_rank,
    lower_delivery_statuses,
    now_iso,
    proves_send,
)
from worker.status.table import ConditionalTable, ConditionFailed

#: The event's numbers and country: set by the winning event, filled from any other.
FILLED = ("PriceUsd", "CarrierFeeUsd", "MessageParts", "IsoCountryCode")
#: Attributes a proven send clears (the claim's lease, the last transient error).
_CLEARED_BY_PROOF = ("LeaseUntil", "ErrorCode", "ErrorReason", "ErrorMessage", "AmbiguousAt")
MAX_WRITES = 4  # per event: the record changed under us more often than this: retried later


def event_iso(timestamp_ms: int) -> str:
    """``eventTimestamp`` as the record's ISO-8601 UTC (one format: compared as text)."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One delivery event, as the record needs it (parsed by
    :mod:`worker.handlers.events.parse`)."""

    request_id: str  # from the reserved Context key
    event_type: str  # TEXT_DELIVERED, MEDIA_FILE_INACCESSIBLE, ...
    status: DeliveryStatus
    message_id: str
    timestamp_ms: int
    reason: str | None = None  # messageStatusDescription
    filled: dict[str, Any] = field(default_factory=dict)  # FILLED attributes the event gave

    @property
    def updated_at(self) -> str:
        return event_iso(self.timestamp_ms)

    @property
    def rank_key(self) -> tuple[int, str, str]:
        return (delivery_rank(self.status), self.updated_at, self.event_type)


def record_rank_key(record: dict[str, Any]) -> tuple[int, str, str]:
    """The rank key of the event that set the record's ``DeliveryStatus`` ((0, "", ""): none)."""
    return (
        delivery_rank(record.get("DeliveryStatus")),
        str(record.get("DeliveryUpdatedAt") or ""),
        str(record.get("DeliveryEvent") or ""),
    )


def wins(record: dict[str, Any], event: DeliveryEvent) -> bool:
    """Does ``event`` replace the record's delivery attributes? Strictly higher rank key."""
    return event.rank_key > record_rank_key(record)


class Applied(enum.StrEnum):
    APPLIED = "applied"  # the event set the record's delivery attributes
    PROVEN = "proven"  # ... and made the record SENT: a send nobody recorded
    STALE = "stale"  # a duplicate, or outranked: nothing (or only a fill) written
    MISSING = "missing"  # no record yet: retry the event later
    CONTENDED = "contended"  # the record kept changing under the writes: retry later


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: Applied
    before: dict[str, Any]  # the record as it stood before the write that took ({}: none)


def apply_event(record: dict[str, Any] | None, event: DeliveryEvent) -> dict[str, Any] | None:
    """The record after ``event``, as the writes below leave it (``None``: no record, the
    event waits). Pure: the reference the property tests compare the table with."""
    if record is None:
        return None
    after = dict(record)
    if proves_send(record.get("Status"), record.get("ErrorCode")):
        for attr in _CLEARED_BY_PROOF:
            after.pop(attr, None)
        after |= {"Status": str(Status.SENT), "MessageId": event.message_id}
        after.setdefault("SentAt", event.updated_at)
    if wins(record, event):
        after |= _delivery_attributes(event)
        if event.reason is None:
            after.pop("DeliveryReason", None)
        after |= event.filled
    else:
        after |= {k: v for k, v in event.filled.items() if k not in record}
    return after


def _delivery_attributes(event: DeliveryEvent) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "DeliveryStatus": str(event.status),
        "DeliveryEvent": event.event_type,
        "DeliveryUpdatedAt": event.updated_at,
    }
    if event.reason is not None:
        attributes["DeliveryReason"] = event.reason
    if event.status is DeliveryStatus.DELIVERED:
        attributes["DeliveredAt"] = event.updated_at
    return attributes


def _rank_condition(event: DeliveryEvent, values: dict[str, Any]) -> str:
    """:func:`wins` as a condition expression: one parenthesised disjunction of conjunctions.

    AND binds tighter than OR in DynamoDB's grammar, so the terms need no parentheses of
    their own; written nested (``S = :ds AND (T < :dts OR (T = :dts AND E < :dev))``) the
    same condition cost dynalite (the bench's DynamoDB server) ten times the CPU to parse."""
    lower = lower_delivery_statuses(event.status)
    values |= {":ds": event.status, ":dts": event.updated_at, ":dev": event.event_type}
    terms = ["attribute_not_exists(DeliveryStatus)"]
    if lower:
        names = [f":lower{i}" for i in range(len(lower))]
        values |= dict(zip(names, lower, strict=True))
        terms.append(f"DeliveryStatus IN ({', '.join(names)})")
    terms.append("DeliveryStatus = :ds AND DeliveryUpdatedAt < :dts")
    terms.append("DeliveryStatus = :ds AND DeliveryUpdatedAt = :dts AND DeliveryEvent < :dev")
    return "(" + " OR ".join(terms) + ")"


class DeliveryWriter:
    """The events consumer's writes to the status table."""

    def __init__(self, io: ConditionalTable) -> None:
        self._io = io

    async def apply(self, event: DeliveryEvent) -> ApplyResult:
        """Write ``event`` to its record. The first write assumes the usual case (the record
        is SENT); a refusal hands back the record, from which the next write is planned."""
        record: dict[str, Any] | None = {"Status": str(Status.SENT)}
        for _ in range(MAX_WRITES):
            assert record is not None
            plan = _plan(record, event)
            if plan is None:
                return ApplyResult(Applied.STALE, record)
            expression, condition, values, applied = plan
            try:
                answer = await self._io.update(
                    event.request_id,
                    expression,
                    condition,
                    values,
                    return_values="ALL_OLD",
                    operation="delivery_event",
                )
            except ConditionFailed as refused:
                if not refused.record:
                    return ApplyResult(Applied.MISSING, {})
                if refused.record == record:
                    return ApplyResult(Applied.STALE, record)  # our plan held and was refused
                record = refused.record
                continue
            before = decode_item(answer.get("Attributes", {}))
            return ApplyResult(applied, before)
        return ApplyResult(Applied.CONTENDED, record or {})


def _plan(
    record: dict[str, Any], event: DeliveryEvent
) -> tuple[str, str, dict[str, Any], Applied] | None:
    """The write that takes ``record`` to :func:`apply_event`'s answer, conditioned on the
    record still being as assumed (its status, and the rank); ``None``: nothing to write."""
    status = record.get("Status")
    proven = proves_send(status, record.get("ErrorCode"))
    winning = wins(record, event)
    fills = {k: v for k, v in event.filled.items() if k not in record}
    if not proven and not winning and not fills:
        return None
    sets: list[str] = []
    removes: list[str] = []
    values: dict[str, Any] = {":status_was": status}
    conditions = ["attribute_exists(RequestId)", "#Status = :status_was"]
    if proven:
        sets += ["#Status = :sent", "MessageId = :mid", "SentAt = if_not_exists(SentAt, :dts)"]
        sets.append("UpdatedAt = :now")
        values |= {":sent": Status.SENT, ":mid": event.message_id, ":now": now_iso()}
        values[":dts"] = event.updated_at
        removes += ["#LeaseUntil", *_CLEARED_BY_PROOF[1:]]
        if record.get("ErrorCode") is not None:
            conditions.append("ErrorCode = :code_was")
            values[":code_was"] = record["ErrorCode"]
        else:
            conditions.append("attribute_not_exists(ErrorCode)")
    if winning:
        conditions.append(_rank_condition(event, values))
        for attr, value in _delivery_attributes(event).items():
            sets.append(f"{attr} = :{attr}")
            values[f":{attr}"] = value
        if event.reason is None:
            removes.append("DeliveryReason")
        for attr, value in event.filled.items():
            sets.append(f"{attr} = :{attr}")
            values[f":{attr}"] = value
    else:
        conditions.append(f"NOT {_rank_condition(event, values)}")
        for attr, value in fills.items():
            sets.append(f"{attr} = if_not_exists({attr}, :{attr})")
            values[f":{attr}"] = value
    expression = f"SET {', '.join(sets)}"
    if removes:
        expression += f" REMOVE {', '.join(removes)}"
    applied = Applied.PROVEN if proven else Applied.APPLIED if winning else Applied.STALE
    return expression, " AND ".join(conditions), values, applied
