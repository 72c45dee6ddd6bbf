"""Two baselines, written the way this job is usually written with boto3.

``python -m bench.baselines sequential QUEUE_URL TABLE`` or ``... threadpool QUEUE_URL TABLE``.
Both do the same work as the worker for each message: receive, send, write the status,
delete. Neither has a rate limiter: the thread pool relies on botocore's ``adaptive`` retry
mode, the usual advice for throttling. They run until SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

API_KEYS = (
    "DestinationPhoneNumber",
    "OriginationIdentity",
    "MessageBody",
    "MediaUrls",
    "ConfigurationSetName",
    "MaxPrice",
    "TimeToLive",
    "Context",
    "DryRun",
    "ProtectConfigurationId",
    "MessageFeedbackEnabled",
)
stopping = threading.Event()


def handle(sqs: Any, sms: Any, ddb: Any, queue_url: str, table: str, msg: dict[str, Any]) -> None:
    body = json.loads(msg["Body"])
    params = {k: v for k, v in body.items() if k in API_KEYS}
    item: dict[str, Any] = {
        "RequestId": {"S": body.get("RequestId") or msg["MessageId"]},
        "UpdatedAt": {"S": datetime.now(UTC).isoformat()},
    }
    try:
        response = sms.send_media_message(**params)
        item["Status"] = {"S": "SENT"}
        item["MessageId"] = {"S": response["MessageId"]}
    except ClientError as exc:
        item["Status"] = {"S": "FAILED"}
        item["ErrorCode"] = {"S": exc.response["Error"]["Code"]}
    ddb.put_item(TableName=table, Item=item)
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])


def sequential(queue_url: str, table: str) -> None:
    sqs, sms, ddb = (
        boto3.client("sqs"),
        boto3.client("pinpoint-sms-voice-v2"),
        boto3.client("dynamodb"),
    )
    while not stopping.is_set():
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2
        )
        for msg in response.get("Messages", []):
            handle(sqs, sms, ddb, queue_url, table, msg)


def threadpool(queue_url: str, table: str, threads: int = 32) -> None:
    config = Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=threads)
    sqs = boto3.client("sqs", config=config)
    sms = boto3.client("pinpoint-sms-voice-v2", config=config)
    ddb = boto3.client("dynamodb", config=config)
    slots = threading.BoundedSemaphore(threads)

    def task(msg: dict[str, Any]) -> None:
        try:
            handle(sqs, sms, ddb, queue_url, table, msg)
        except Exception as exc:  # a baseline: log and move on, the message comes back
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        while not stopping.is_set():
            # Receive only while a thread is free (the fair version of this baseline).
            slots.acquire()
            free = 1
            while free < 10 and slots.acquire(blocking=False):
                free += 1
            response = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=free, WaitTimeSeconds=2
            )
            messages = response.get("Messages", [])
            for _ in range(free - len(messages)):
                slots.release()
            for msg in messages:
                pool.submit(task, msg)


def main() -> int:
    kind, queue_url, table = sys.argv[1:4]
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    print(json.dumps({"event": "baseline_ready", "kind": kind, "url": "-"}), flush=True)
    started = time.monotonic()
    {"sequential": sequential, "threadpool": threadpool}[kind](queue_url, table)
    print(f"{kind} stopped after {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
