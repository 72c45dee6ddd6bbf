"""Per-campaign outcome counters: cheap progress for a table of millions of records.

Why counters: the status table is keyed by ``RequestId`` and may hold millions of records, so
counting a campaign's outcomes from the records would mean a Scan (reads the whole table) or
an index on ``CampaignId`` (a second copy of every write). Instead every worker keeps, in
memory, how many of each campaign's requests reached each final status since its last flush,
and adds those deltas to one counter item per campaign, at most once per ``flush_interval_s``,
with one ``UpdateItem`` (``ADD``, which DynamoDB applies atomically, so any number of workers
can add to the same item). Reading a campaign's progress is one ``GetItem``.

The counter item lives in the status table itself, under ``RequestId = "campaign#<id>"``.
It cannot collide with a request's record: a ``RequestId`` must match
``[A-Za-z0-9_.:-]{1,128}`` (and one defaulted from an SQS message id is a UUID), neither of
which can contain ``#``. Producers must never use a ``RequestId`` starting with ``campaign#``;
the contract makes that impossible. The item also carries ``RecordType = "campaign-counters"``
so that exports and scans of the table can tell it from request records.

Attributes of a counter item: ``SENT``, ``FAILED``, ``EXPIRED`` (numbers), ``FAILED#<code>``
(failures by error code or reason), ``Expected`` (the campaign's number of requests, when a
producer recorded it with :func:`add_expected`), ``StartedAt`` (first flush) and ``UpdatedAt``
(last flush) as ISO-8601 UTC, and ``ExpiresAt`` when the counters were given a TTL.

From delivery events (the events handler, :meth:`CampaignCounters.delivery`): ``DELIVERED``,
``UNDELIVERED`` and ``UNDELIVERED#<eventType>`` (requests whose record has that
``DeliveryStatus`` now: a record moving from UNDELIVERED to DELIVERED moves its count), and
``PriceUsd``, the sum of the records' ``PriceUsd``. Pending (sent, no final event yet) and the
delivery rate are derived: ``SENT - DELIVERED - UNDELIVERED`` and ``DELIVERED / SENT``.

A replay (a ``FAILED``/``RETRIES_EXHAUSTED`` request re-opened by a delivery from the
dead-letter queue) subtracts 1 from ``FAILED`` and ``FAILED#RETRIES_EXHAUSTED`` when it is
claimed, and its next final outcome is counted as usual: a replayed request that ends ``SENT``
counts once, as ``SENT``, and while it is being sent again it is not done.

The counts are approximate, the per-request records stay authoritative: a worker that crashes
loses what it had not flushed yet (at most one flush interval of its outcomes), and a flush
whose answer is lost (a timeout after DynamoDB applied it) is retried and may count twice.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.aws.errors import describe, error_message
from worker.lifecycle import BackgroundService
from worker.logs import get_logger
from worker.status.codec import decode_item
from worker.status.expected import (
    KEY_PREFIX,
    RECORD_TYPE,
    add_expected,
    check_campaign_id,
    counter_key,
)
from worker.status.model import (
    RETRIES_EXHAUSTED,
    DeliveryStatus,
    Status,
    counted_statuses,
    counts_as_done,
    now_iso,
)

SENT, FAILED, EXPIRED = Status.SENT, Status.FAILED, Status.EXPIRED

ERROR_PREFIX = "FAILED#"
DELIVERED, UNDELIVERED = DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED
UNDELIVERED_PREFIX = "UNDELIVERED#"
PRICE = "PriceUsd"  # the sum of the campaign's records' PriceUsd
UNKNOWN_ERROR = "UNKNOWN"
_ERROR_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
_ERROR_KEY_MAX = 100
_CONCURRENT_WRITES = 16

log = get_logger("worker.status.counters")


def undelivered_key(event_type: object) -> str:
    """``UNDELIVERED#<eventType>``: undelivered requests by the event type that said so."""
    code = _ERROR_KEY_UNSAFE.sub("_", str(event_type or UNKNOWN_ERROR)[:_ERROR_KEY_MAX])
    return UNDELIVERED_PREFIX + code


def error_key(error_code: str | None) -> str:
    """``FAILED#<code>``: the code kept to a short, plain attribute name."""
    code = _ERROR_KEY_UNSAFE.sub("_", (error_code or UNKNOWN_ERROR)[:_ERROR_KEY_MAX])
    return ERROR_PREFIX + code


class CountersFlushError(Exception):
    """Some campaigns' deltas could not be written; they are kept for the next flush."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = failures
        details = "; ".join(f"{c}: {_describe(e)}" for c, e in sorted(failures.items()))
        super().__init__(
            f"could not write the counters of {len(failures)} campaign(s) ({details}); "
            "their counts are kept in memory and written by the next flush: check that the "
            "table exists and that this role may call dynamodb:UpdateItem on it"
        )


def _describe(exc: BaseException) -> str:
    return f"{describe(exc)}: {error_message(exc)}"


class CampaignCounters(BackgroundService):
    """In-memory deltas of final outcomes per campaign, flushed with one ``UpdateItem`` per
    campaign per flush. ``client`` is an aiobotocore DynamoDB client. A background service:
    ``start()`` runs the flush loop, ``close()`` (idempotent) stops it and flushes the rest,
    raising :class:`CountersFlushError` if that last flush fails (those counts are lost)."""

    def __init__(
        self,
        client: Any,
        table: str,
        flush_interval_s: float = 1.0,
        *,
        ttl_days: int | None = None,
    ) -> None:
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0 seconds, got {flush_interval_s}")
        if ttl_days is not None and ttl_days < 1:
            raise ValueError(f"ttl_days must be >= 1 or None (no expiry), got {ttl_days}")
        super().__init__("campaign-counters")
        self._client = client
        self._table = table
        self._ttl_s = ttl_days * 86_400 if ttl_days is not None else None
        self._pending: dict[str, Counter[str]] = {}
        self._lock = asyncio.Lock()
        self.every(flush_interval_s, self._flush_logged)

    def record(self, campaign_id: str, status: str, error_code: str | None) -> None:
        """Count one request's final outcome (call once, when its final record was written)."""
        if not counts_as_done(status):
            raise ValueError(
                f"status {status!r} is not final: record only {SENT}, {FAILED} or {EXPIRED}, "
                "once per request, after its final status was written"
            )
        check_campaign_id(campaign_id)
        delta = self._pending.setdefault(campaign_id, Counter())
        delta[status] += 1
        if status == FAILED:
            delta[error_key(error_code)] += 1

    def reopened(self, campaign_id: str) -> None:
        """Un-count one ``FAILED``/``RETRIES_EXHAUSTED`` that a replay re-opened: its request is
        not done again until its next final outcome is recorded (a negative delta, which
        ``ADD`` applies like any other)."""
        check_campaign_id(campaign_id)
        delta = self._pending.setdefault(campaign_id, Counter())
        delta[FAILED] -= 1
        delta[error_key(RETRIES_EXHAUSTED)] -= 1

    def delivery(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Count what one delivery event changed in a record (``before`` -> ``after``, both
        as the table holds them): ``DELIVERED``, ``UNDELIVERED`` and ``UNDELIVERED#<eventType>``
        move with its ``DeliveryStatus``; ``PriceUsd`` adds the price it gained; a record an
        event proved sent counts ``SENT`` (from ``FAILED``: that count moves). A ``SENDING``
        record proven sent is counted only once its lease has passed (its worker died);
        before that, its worker counts the ``SENT`` it writes."""
        campaign_id = after.get("CampaignId")
        if not isinstance(campaign_id, str):
            return
        check_campaign_id(campaign_id)
        delta = self._pending.setdefault(campaign_id, Counter())
        was, now = before.get("DeliveryStatus"), after.get("DeliveryStatus")
        if was != now or before.get("DeliveryEvent") != after.get("DeliveryEvent"):
            moves = ((was, before.get("DeliveryEvent"), -1), (now, after.get("DeliveryEvent"), 1))
            for status, event, sign in moves:
                if status in (DELIVERED, UNDELIVERED):
                    delta[status] += sign
                if status == UNDELIVERED:
                    delta[undelivered_key(event)] += sign
        price = Decimal(str(after.get("PriceUsd") or 0)) - Decimal(str(before.get("PriceUsd") or 0))
        if price:
            delta[PRICE] += price  # type: ignore[assignment]
        status_was = before.get("Status")
        lapsed = (
            status_was == Status.SENDING and int(before.get("LeaseUntil") or 0) < time.time() * 1000
        )
        if after.get("Status") == SENT and (status_was in (Status.RETRYING, FAILED) or lapsed):
            delta[SENT] += 1
            if status_was == FAILED:
                delta[FAILED] -= 1
                delta[error_key(before.get("ErrorCode"))] -= 1

    @property
    def pending(self) -> dict[str, dict[str, int]]:
        """The deltas not yet written, per campaign (a copy)."""
        return {campaign: dict(delta) for campaign, delta in self._pending.items()}

    async def flush(self) -> None:
        """Write every pending delta: one ``UpdateItem`` per campaign. Raises
        :class:`CountersFlushError` if some failed; those deltas are kept for the next flush."""
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            unwritten = dict(batch)
            failures: dict[str, BaseException] = {}
            gate = asyncio.Semaphore(_CONCURRENT_WRITES)

            async def write(campaign: str, delta: Counter[str]) -> None:
                async with gate:
                    try:
                        await self._write(campaign, delta)
                    except Exception as exc:
                        failures[campaign] = exc
                        return
                del unwritten[campaign]

            try:
                await asyncio.gather(*(write(c, d) for c, d in batch.items()))
            finally:  # failed, or not known to be written (cancelled): keep for next time
                for campaign, delta in unwritten.items():
                    self._pending.setdefault(campaign, Counter()).update(delta)
            if failures:
                raise CountersFlushError(failures) from next(iter(failures.values()))

    async def _write(self, campaign_id: str, delta: Counter[str]) -> None:
        now = now_iso()
        names = {"#u": "UpdatedAt", "#s": "StartedAt", "#t": "RecordType"}
        values: dict[str, Any] = {":now": {"S": now}, ":type": {"S": RECORD_TYPE}}
        sets = ["#u = :now", "#s = if_not_exists(#s, :now)", "#t = :type"]
        if self._ttl_s is not None:
            names["#e"] = "ExpiresAt"
            values[":exp"] = {"N": str(int(time.time()) + self._ttl_s)}
            sets.append("#e = :exp")
        adds = []
        for i, (attribute, count) in enumerate(sorted(delta.items())):
            names[f"#a{i}"] = attribute
            values[f":a{i}"] = {"N": str(count)}
            adds.append(f"#a{i} :a{i}")
        await self._client.update_item(
            TableName=self._table,
            Key={"RequestId": {"S": counter_key(campaign_id)}},
            UpdateExpression=f"SET {', '.join(sets)} ADD {', '.join(adds)}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except CountersFlushError as exc:
            log.warning(
                "campaign_counters_flush_failed",
                campaigns=sorted(exc.failures),
                error=_describe(next(iter(exc.failures.values()))),
            )

    async def _drain(self) -> None:
        """``close()``'s last flush, once the loop is stopped; raises
        :class:`CountersFlushError` if it fails (those counts are lost)."""
        try:
            await self.flush()
        except CountersFlushError as exc:
            log.error(
                "campaign_counters_lost",
                campaigns=sorted(exc.failures),
                error=_describe(next(iter(exc.failures.values()))),
            )
            raise


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    """A campaign's counters as read (``found`` is False when there is no counter item)."""

    campaign_id: str
    found: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # SENT, FAILED, EXPIRED
    errors: dict[str, int] = field(default_factory=dict)  # FAILED by error code or reason
    expected: int | None = None
    delivered: int = 0
    undelivered: dict[str, int] = field(default_factory=dict)  # by eventType
    price_usd: Decimal = Decimal(0)
    started_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def sent(self) -> int:
        return self.counts.get(SENT, 0)

    @property
    def undelivered_total(self) -> int:
        return sum(self.undelivered.values())

    @property
    def delivery_pending(self) -> int:
        """Sent, with no final delivery event yet (pending, accepted by the carrier only)."""
        return max(0, self.sent - self.delivered - self.undelivered_total)

    @property
    def delivery_rate(self) -> float | None:
        """Delivered / sent (``None`` before anything was sent)."""
        return self.delivered / self.sent if self.sent else None

    @property
    def done(self) -> int:
        """Requests that reached a final status (SENT, FAILED or EXPIRED)."""
        return sum(self.counts.get(status, 0) for status in counted_statuses())

    @classmethod
    def from_item(cls, campaign_id: str, item: dict[str, Any]) -> CampaignProgress:
        counts = {str(status): int(item.get(status) or 0) for status in counted_statuses()}
        errors = {
            key.removeprefix(ERROR_PREFIX): int(value)
            for key, value in item.items()
            if key.startswith(ERROR_PREFIX) and isinstance(value, int)
        }
        expected = item.get("Expected")
        undelivered = {
            key.removeprefix(UNDELIVERED_PREFIX): int(value)
            for key, value in item.items()
            if key.startswith(UNDELIVERED_PREFIX) and isinstance(value, int) and value
        }
        return cls(
            campaign_id,
            found=True,
            counts=counts,
            errors=errors,
            expected=int(expected) if isinstance(expected, int) else None,
            delivered=int(item.get(DELIVERED) or 0),
            undelivered=undelivered,
            price_usd=Decimal(str(item.get(PRICE) or 0)),
            started_at=_parse_time(item.get("StartedAt")),
            updated_at=_parse_time(item.get("UpdatedAt")),
        )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


async def read_campaign(client: Any, table: str, campaign_id: str) -> CampaignProgress:
    """A campaign's progress: one (consistent) ``GetItem`` of its counter item."""
    response = await client.get_item(
        TableName=table, Key={"RequestId": {"S": counter_key(campaign_id)}}, ConsistentRead=True
    )
    item = response.get("Item")
    if not item:
        return CampaignProgress(campaign_id)
    return CampaignProgress.from_item(campaign_id, decode_item(item))


__all__ = ["KEY_PREFIX", "RECORD_TYPE", "add_expected", "check_campaign_id", "counter_key"]
