"""The status table: the idempotent claim, the final write, and reads.

The record is a small state machine (:mod:`worker.status.model`): a request is *claimed* with one
conditional write (new, ``RETRYING``, or ``SENDING`` whose lease has passed), and its outcome
is written with a condition that this worker still owns the claim (its lease token). On a
failed condition DynamoDB hands back the existing record (``ALL_OLD``), so no second read is
needed to tell a duplicate from a live claim.

A *replay* (refused by a ``FAILED``/``RETRIES_EXHAUSTED`` record) re-opens it with a second
conditional write that also adds 1 to ``Replays`` (an update cannot add only when one branch of
its condition held). Each write is atomic: of two deliveries that saw the exhausted record, one
re-opens it and the other finds its live claim.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from worker.health import DependencyHealth
from worker.status.codec import decode_item
from worker.status.model import (
    RETRIES_EXHAUSTED,
    Claim,
    ClaimRefused,
    Outcome,
    Recorded,
    RecordFields,
    Status,
    is_replayable,
    may_follow,
    now_iso,
)
from worker.status.table import ConditionalTable, ConditionFailed

_CLAIMABLE = (
    "attribute_not_exists(RequestId) OR #Status = :retrying "
    "OR (#Status = :sending AND #LeaseUntil < :now_ms)"
)
#: The re-opening write's condition: the record ran out of receives (model.is_replayable).
_REPLAYABLE = "#Status = :failed AND ErrorCode = :exhausted"
_REOPEN_VALUES = {":failed": Status.FAILED, ":exhausted": RETRIES_EXHAUSTED, ":one": 1}


class StatusStore:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        lease_s: float,
        ttl_days: int,
        health: DependencyHealth | None = None,
    ) -> None:
        self._io = ConditionalTable(client, table, health or DependencyHealth())
        self._lease_ms = int(lease_s * 1000)
        self._ttl_s = ttl_days * 86_400

    def _common(self, info: RecordFields, now_ms: int) -> tuple[list[str], dict[str, Any]]:
        """SET clauses and values every write makes (copied fields, timestamps, TTL)."""
        sets = [
            "UpdatedAt = :now_iso",
            "CreatedAt = if_not_exists(CreatedAt, :now_iso)",
            "SqsMessageId = :sqs_id",
            "ReceiveCount = :rc",
            "ExpiresAt = :expires",
        ]
        values: dict[str, Any] = {
            ":now_iso": now_iso(),
            ":sqs_id": info.sqs_message_id,
            ":rc": info.receive_count,
            ":expires": now_ms // 1000 + self._ttl_s,
        }
        for attr, value in (
            ("CampaignId", info.campaign_id),
            ("DestinationPhoneNumber", info.destination),
            ("OriginationIdentity", info.identity),
            ("Channel", info.channel),
            ("ReservedParts", info.message_parts),
        ):
            if value is not None:
                sets.append(f"{attr} = :{attr}")
                values[f":{attr}"] = value
        if info.dry_run:
            sets.append("DryRun = :dry")
            values[":dry"] = True
        return sets, values

    async def claim(self, info: RecordFields) -> Claim | ClaimRefused:
        """Take the request for one send (status SENDING) unless it is final or leased; a
        ``FAILED``/``RETRIES_EXHAUSTED`` record is re-opened (a replay, ``Replays`` + 1)."""
        now_ms = int(time.time() * 1000)
        token = secrets.token_hex(8)
        sets, values = self._common(info, now_ms)
        sets += ["#Status = :sending", "#LeaseUntil = :lease", "LeaseToken = :token"]
        lease_until = now_ms + self._lease_ms
        values |= {":now_ms": now_ms, ":lease": lease_until, ":token": token, ":one": 1}
        update = f"SET {', '.join(sets)} ADD Attempts :one"
        reopen = f"{update}, Replays :one REMOVE ErrorCode, ErrorReason, ErrorMessage"
        try:
            response, reopened = await self._claimable_write(
                info.request_id, update, reopen, values, return_values="ALL_OLD", operation="claim"
            )
        except ConditionFailed as lost:
            if lost.record.get("LeaseToken") != token:
                return ClaimRefused(lost.record)
            # Our own write went through and its answer was lost; botocore retried it. What
            # the record was before is lost with it, but for its AmbiguousAt (kept by claims).
            prior = {k: v for k, v in lost.record.items() if k == "AmbiguousAt"}
            attempts = int(lost.record.get("Attempts") or 1)
            return Claim(info.request_id, token, attempts, lease_until, prior, lost.reopened)
        prior = decode_item(response.get("Attributes", {}))
        attempts = int(prior.get("Attempts") or 0) + 1
        return Claim(info.request_id, token, attempts, lease_until, prior, reopened)

    async def write_outcome(
        self, claim: Claim, info: RecordFields, outcome: Outcome, calls: int
    ) -> ClaimRefused | None:
        """Write a claim's FAILED or RETRYING outcome, on the condition that the claim is still
        ours; returns the record instead if the lease was lost. (SENT: see SentWriter.)"""
        now_ms = int(time.time() * 1000)
        sets, values = self._common(info, now_ms)
        sets += ["#Status = :status", "Attempts = :attempts"]
        values |= {
            ":status": outcome.status,
            ":attempts": claim.attempts_after(calls),
            ":token": claim.token,
            ":sending": Status.SENDING,
        }
        removes = ["#LeaseUntil"]
        self._error_fields(outcome, sets, removes, values)
        if outcome.ambiguous_at_ms is not None:
            sets.append("AmbiguousAt = :ambiguous_at")
            values[":ambiguous_at"] = outcome.ambiguous_at_ms
        else:
            removes.append("AmbiguousAt")
        expression = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
        try:
            await self._io.update(
                claim.request_id,
                expression,
                "LeaseToken = :token AND #Status = :sending",
                values,
                operation="record",
            )
        except ConditionFailed as lost:
            if _is_own_write(lost.record, claim.token, outcome.status):
                return None  # a retried write that finds its own outcome: done, not lost
            return ClaimRefused(lost.record)
        return None

    async def record_without_call(
        self, info: RecordFields, outcome: Outcome
    ) -> ClaimRefused | Recorded:
        """A final status reached before any call (invalid, expired), unless already final
        or claimed: then the existing record is returned and nothing is written. A replayable
        record (``FAILED``/``RETRIES_EXHAUSTED``) may become ``EXPIRED`` (``Replays`` + 1), never
        an invalid ``FAILED``: a bad copy of a valid request does not overwrite it."""
        now_ms = int(time.time() * 1000)
        token = secrets.token_hex(8)
        sets, values = self._common(info, now_ms)
        sets += [
            "#Status = :status",
            "Attempts = if_not_exists(Attempts, :zero)",
            "LeaseToken = :token",
        ]
        values |= {":status": outcome.status, ":token": token, ":zero": 0, ":now_ms": now_ms}
        removes = ["#LeaseUntil"]
        self._error_fields(outcome, sets, removes, values)
        expression = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
        may_reopen = may_follow(Status.FAILED, outcome.status, RETRIES_EXHAUSTED)
        try:
            _, reopened = await self._claimable_write(
                info.request_id,
                expression,
                f"{expression} ADD Replays :one" if may_reopen else None,
                values,
                operation="record",
            )
        except ConditionFailed as lost:
            if _is_own_write(lost.record, token, outcome.status):
                return Recorded(lost.reopened)  # our own write, retried: its answer was lost
            return ClaimRefused(lost.record, attempted=outcome.status)
        return Recorded(reopened)

    async def get(self, request_id: str) -> dict[str, Any] | None:
        return await self._io.get(request_id)

    @staticmethod
    def _error_fields(
        outcome: Outcome, sets: list[str], removes: list[str], values: dict[str, Any]
    ) -> None:
        for attr, value in (
            ("ErrorCode", outcome.error_code),
            ("ErrorReason", outcome.error_reason),
            ("ErrorMessage", outcome.error_message),
        ):
            if value:
                sets.append(f"{attr} = :{attr}")
                values[f":{attr}"] = value
            else:
                removes.append(attr)

    async def _claimable_write(
        self,
        request_id: str,
        update: str,
        reopen: str | None,
        values: dict[str, Any],
        return_values: str = "NONE",
        *,
        operation: str,
    ) -> tuple[dict[str, Any], bool]:
        """``update`` on the claim's condition; refused by a replayable record (not by our own
        retried write), ``reopen`` (if given) on :data:`_REPLAYABLE`. Returns the answer and
        whether it re-opened the record; raises :class:`ConditionFailed` (``reopened`` set)."""
        values = {":sending": Status.SENDING, ":retrying": Status.RETRYING} | values
        try:
            answer = await self._io.update(
                request_id, update, _CLAIMABLE, values, return_values, operation=operation
            )
            return answer, False
        except ConditionFailed as refused:
            old = refused.record
            if reopen is None or old.get("LeaseToken") == values[":token"]:
                raise
            if not is_replayable(old.get("Status"), old.get("ErrorCode")):
                raise
        values |= _REOPEN_VALUES
        try:
            answer = await self._io.update(
                request_id, reopen, _REPLAYABLE, values, return_values, operation=operation
            )
            return answer, True
        except ConditionFailed as lost:
            lost.reopened = True
            raise


def _is_own_write(record: dict[str, Any], token: str, status: str) -> bool:
    return record.get("LeaseToken") == token and record.get("Status") == status
