"""A campaign's counter item: its key, and the producer's ``Expected`` total.

Kept apart from :mod:`worker.status.counters` so that ``sms-worker enqueue`` needs no more than
``dynamodb:UpdateItem`` on counter items (``campaign#...`` keys) besides ``sqs:SendMessage``.
"""

from __future__ import annotations

import re
from typing import Any

from worker.model.messages import RULES
from worker.model.rules import TOKEN_PATTERN

# RequestId may only hold [A-Za-z0-9_.:-], never '#': a counter key never meets a request's.
KEY_PREFIX = "campaign#"
RECORD_TYPE = "campaign-counters"
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
