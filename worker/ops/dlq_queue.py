"""The SQS and DynamoDB mechanics of ``sms-worker dlq``: find the dead-letter queue, read it
once through (each message kept invisible while the command runs), look its records up, and
move messages (send first, then delete what was sent)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from worker.backoff import compute_backoff_s
from worker.ops.common import OpsError
from worker.status.codec import decode_item

#: How long a dead letter stays invisible once read (the command makes it visible at the end).
KEEP_S = 300
_BATCH = 10
_GET_TRIES = 5


@dataclass
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, Any]
    receive_count: int
    request_id: str
    campaign_id: str | None
    record: dict[str, Any] | None = None

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> DeadLetter:
        body = message.get("Body", "")
        request_id, campaign_id = message["MessageId"], None
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            if isinstance(parsed.get("RequestId"), str) and parsed["RequestId"]:
                request_id = parsed["RequestId"]  # else keyed by the SQS MessageId
            if isinstance(parsed.get("CampaignId"), str):
                campaign_id = parsed["CampaignId"]
        return cls(
            message["MessageId"],
            message["ReceiptHandle"],
            body,
            message.get("MessageAttributes") or {},
            int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 0)),
            request_id,
            campaign_id,
        )


async def find_dlq(
    sqs: Any, queue_url: str | None, dlq_url: str | None, *, needs_source: bool
) -> tuple[str, str]:
    """(source queue URL, dead-letter queue URL): the DLQ from ``--dlq-url`` or the source
    queue's ``RedrivePolicy``."""
    if not queue_url:
        if dlq_url and not needs_source:
            return "", dlq_url
        raise OpsError(
            "no source queue: pass --queue-url or set SMS_WORKER_QUEUE_URL (the queue the "
            "workers read; its redrive policy names the dead-letter queue)",
            exit_code=2,
        )
    if dlq_url is None:
        response = await sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
        )
        policy = (response.get("Attributes") or {}).get("RedrivePolicy")
        if not policy:
            raise OpsError(
                f"queue {queue_url} has no redrive policy, so no dead-letter queue: pass "
                "--dlq-url, or give it one with 'sms-worker init'",
                exit_code=2,
            )
        arn = str(json.loads(policy)["deadLetterTargetArn"])
        account, name = arn.split(":")[4], arn.split(":")[5]
        found = await sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
        dlq_url = str(found["QueueUrl"])
    if dlq_url == queue_url:
        raise OpsError("the dead-letter queue is the source queue: check --dlq-url", exit_code=2)
    return queue_url, dlq_url


async def fetch_records(ddb: Any, table: str, letters: list[DeadLetter]) -> None:
    """Set each letter's status record (one consistent ``BatchGetItem``, unprocessed keys
    retried)."""
    wanted = {letter.request_id for letter in letters}
    records: dict[str, dict[str, Any]] = {}
    keys = [{"RequestId": {"S": request_id}} for request_id in sorted(wanted)]
    for attempt in range(_GET_TRIES):
        if not keys:
            break
        response = await ddb.batch_get_item(
            RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
        )
        for raw in response.get("Responses", {}).get(table, []):
            item = decode_item(raw)
            records[item["RequestId"]] = item
        keys = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if keys:
            await asyncio.sleep(compute_backoff_s(attempt + 1, 0.1, 2.0))
    if keys:
        raise OpsError(f"DynamoDB did not return {len(keys)} record(s) of {table!r}: try again")
    for letter in letters:
        letter.record = records.get(letter.request_id)


class DeadLetters:
    """One pass through a dead-letter queue: each message received once and kept invisible
    until it is moved (deleted) or :meth:`release_kept` makes it visible again."""

    def __init__(self, sqs: Any, url: str, *, limit: int | None = None) -> None:
        self._sqs, self._url, self._limit = sqs, url, limit
        self._kept: dict[str, str] = {}  # message id -> receipt handle, not deleted
        self._seen: set[str] = set()

    async def batches(self) -> AsyncIterator[list[DeadLetter]]:
        while self._limit is None or len(self._seen) < self._limit:
            want = _BATCH if self._limit is None else min(_BATCH, self._limit - len(self._seen))
            response = await self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=want,
                WaitTimeSeconds=1,
                VisibilityTimeout=KEEP_S,
                AttributeNames=["ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages") or []
            fresh = []
            for message in messages:
                self._kept[message["MessageId"]] = message["ReceiptHandle"]
                if message["MessageId"] not in self._seen:
                    self._seen.add(message["MessageId"])
                    fresh.append(DeadLetter.from_message(message))
            if not fresh:
                return  # empty, or only messages seen already: one pass is done
            yield fresh

    async def move(self, letters: list[DeadLetter], target: str) -> tuple[int, list[Any]]:
        """Send ``letters`` to ``target``, then delete from the DLQ exactly those sent.
        Returns how many moved and ``(request id, error)`` for each that did not."""
        if not letters:
            return 0, []
        by_id = {str(i): letter for i, letter in enumerate(letters)}
        entries = []
        for entry_id, letter in by_id.items():
            entry: dict[str, Any] = {"Id": entry_id, "MessageBody": letter.body}
            if letter.attributes:
                entry["MessageAttributes"] = _attributes(letter.attributes)
            entries.append(entry)
        sent = await self._sqs.send_message_batch(QueueUrl=target, Entries=entries)
        failures = [
            (by_id[f["Id"]].request_id, f"not sent: {f.get('Code')}: {f.get('Message')}")
            for f in sent.get("Failed") or []
        ]
        done = [by_id[s["Id"]] for s in sent.get("Successful") or []]
        if not done:
            return 0, failures
        deleted = await self._sqs.delete_message_batch(
            QueueUrl=self._url,
            Entries=[{"Id": str(i), "ReceiptHandle": d.receipt_handle} for i, d in enumerate(done)],
        )
        for f in deleted.get("Failed") or []:
            letter = done[int(f["Id"])]
            why = f"sent, but not deleted from the DLQ ({f.get('Code')}): a worker skips a copy"
            failures.append((letter.request_id, why))
        moved = 0
        for s in deleted.get("Successful") or []:
            self._kept.pop(done[int(s["Id"])].message_id, None)
            moved += 1
        return moved, failures

    async def release_kept(self) -> None:
        """Make every message read but not moved visible again."""
        handles = list(self._kept.values())
        self._kept.clear()
        for start in range(0, len(handles), _BATCH):
            chunk = handles[start : start + _BATCH]
            await self._sqs.change_message_visibility_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(chunk)
                ],
            )


def _attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    keep = ("DataType", "StringValue", "BinaryValue")
    return {name: {k: v[k] for k in keep if k in v} for name, v in attributes.items()}
