"""A campaign's counter item: its key, and the producer's ``Expected`` total.

Kept apart from :mod:`worker.status.counters` so that ``sms-worker enqueue`` needs no more than
``dynamodb:UpdateItem`` on counter items (``campaign#...`` keys) besides ``sqs:SendMessage``.

``Expected`` is the sum of one share per *run identity*: a hash of the campaign id and the set
of RequestIds of one input (:func:`run_id`). Each share is its own attribute,
``ExpectedRun#<run id>``, and :class:`RunShare` moves a share and ``Expected`` together in one
conditional ``UpdateItem``, so the same input enqueued again, even by two producers at once,
changes nothing, at the cost of two or three writes per run rather than one per request.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from botocore.exceptions import ClientError

from worker.aws.errors import CONDITION_FAILED, error_field
from worker.model.messages import RULES
from worker.model.rules import TOKEN_PATTERN
from worker.status.model import KeyFamily

# RequestId may only hold [A-Za-z0-9_.:-], never '#': a counter key never meets a request's.
KEY_PREFIX = KeyFamily.CAMPAIGN.value
RECORD_TYPE = "campaign-counters"
RUN_PREFIX = "ExpectedRun#"
_DIGEST_MOD = 1 << 128
_ATTEMPTS = 8
_CAMPAIGN_ID = re.compile(TOKEN_PATTERN)


def counter_key(campaign_id: str) -> str:
    """The ``RequestId`` of a campaign's counter item."""
    check_campaign_id(campaign_id)
    return KEY_PREFIX + campaign_id


def check_campaign_id(campaign_id: str) -> None:
    if not isinstance(campaign_id, str) or _CAMPAIGN_ID.fullmatch(campaign_id) is None:
        raise ValueError(f"campaign id {campaign_id!r} is not valid: {RULES['CampaignId']}")


async def add_expected(client: Any, table: str, campaign_id: str, n: int) -> None:
    """Add ``n`` to the campaign's ``Expected`` number of requests (a producer calls this for
    what it enqueued; a negative ``n`` corrects an over-count)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n must be a whole number of requests, got {n!r}")
    if n == 0:
        return
    await client.update_item(
        TableName=table,
        Key={"RequestId": {"S": counter_key(campaign_id)}},
        UpdateExpression="SET #t = :type ADD #x :n",
        ExpressionAttributeNames={"#t": "RecordType", "#x": "Expected"},
        ExpressionAttributeValues={":type": {"S": RECORD_TYPE}, ":n": {"N": str(n)}},
    )


def request_id_hash(request_id: str) -> int:
    """One RequestId's term of a run's order-free digest: add the terms modulo ``2**128``."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:16], "big")


def add_to_digest(digest: int, request_id: str) -> int:
    return (digest + request_id_hash(request_id)) % _DIGEST_MOD


def run_id(campaign_id: str, digest: int, count: int) -> str:
    """The identity of one input: the campaign, and the multiset of its RequestIds (their
    ``count`` and the sum of their hashes, so the rows' order does not matter)."""
    check_campaign_id(campaign_id)
    text = f"{campaign_id}\n{count}\n{digest:032x}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class RunShare:
    """One run identity's share of a campaign's ``Expected`` total.

    ``begin(planned)`` raises the share to ``planned`` (what the run is about to enqueue) so
    that a ``campaign --watch`` does not end while the run is still enqueueing; ``end(n)``
    sets it to what was enqueued, but never below what an earlier run of the same input
    recorded. So a re-run adds nothing, an interrupted run counts only what it enqueued, and
    a re-run after an interruption completes the count. Every call is a conditional
    ``UpdateItem``; a ``ClientError`` (a wrong table, a denied call) propagates.
    """

    def __init__(self, client: Any, table: str, campaign_id: str, run: str) -> None:
        self._client = client
        self._table = table
        self._key = {"RequestId": {"S": counter_key(campaign_id)}}
        self._attribute = RUN_PREFIX + run
        self.earlier = 0  # what earlier runs of the same input had recorded
        self.recorded = 0  # the share as this run last wrote or read it

    async def begin(self, planned: int) -> None:
        self.earlier = self.recorded = await self._read()
        await self._set(max(self.earlier, planned))

    async def end(self, enqueued: int) -> None:
        await self._set(max(self.earlier, enqueued))

    async def _read(self) -> int:
        """The stored share (0 if none), creating the counter item if needed."""
        response = await self._client.update_item(
            TableName=self._table,
            Key=self._key,
            UpdateExpression="SET #t = :type, #r = if_not_exists(#r, :zero)",
            ExpressionAttributeNames={"#t": "RecordType", "#r": self._attribute},
            ExpressionAttributeValues={":type": {"S": RECORD_TYPE}, ":zero": {"N": "0"}},
            ReturnValues="ALL_NEW",
        )
        return int(response["Attributes"][self._attribute]["N"])

    async def _set(self, target: int) -> None:
        for _ in range(_ATTEMPTS):
            delta = target - self.recorded
            if delta == 0:
                return
            try:
                await self._client.update_item(
                    TableName=self._table,
                    Key=self._key,
                    UpdateExpression="SET #r = :new ADD #x :delta",
                    ConditionExpression="#r = :old",
                    ExpressionAttributeNames={"#r": self._attribute, "#x": "Expected"},
                    ExpressionAttributeValues={
                        ":new": {"N": str(target)},
                        ":old": {"N": str(self.recorded)},
                        ":delta": {"N": str(delta)},
                    },
                )
            except ClientError as exc:
                if error_field(exc, "Code") != CONDITION_FAILED:
                    raise
                self.recorded = await self._read()  # another run of the same input moved it
                continue
            self.recorded = target
            return
        raise RuntimeError(f"{self._attribute} kept changing; run the same command again")
