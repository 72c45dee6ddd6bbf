"""``make run``: the whole thing on local servers, start to finish, in about a minute.

Starts moto (SQS + DynamoDB) and the sandbox on free ports, creates the queue (with a
dead-letter queue) and the status table, feeds a 1,000-request campaign of MMS and SMS (long
and Unicode SMS bodies of several parts; invalid, opted-out and expired requests among them)
into the queue as the worker drains it, runs a real ``sms-worker run`` process with a live
progress line, prints a summary (with the parts sent per channel), stops everything.
The sandbox emits delivery events (a mix of outcomes, SNS-enveloped, some late, some twice)
to an events queue the worker drains too, so the summary shows the delivery rate and cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from worker.aws.clients import aws_client
from worker.devstack.stack import LocalStack
from worker.ops.progress import format_delivery
from worker.resources import ensure_resources
from worker.status.codec import decode_item
from worker.status.counters import read_campaign
from worker.status.model import KeyFamily

#: RequestId prefixes of the table's items that are not requests (counters, rate shares).
FAMILIES = tuple(family.value for family in KeyFamily)
TOTAL = 1_000
CAMPAIGN = "demo-campaign"
FAST, SLOW = "pool-demo", "+18005550100"  # identities: a pool and a toll-free number
# SMS is paced in message parts per second, on a bucket of its own per identity.
WORKER_RATES = f"default=20,{FAST}=20,{FAST}/SMS=40,{SLOW}=6"
SANDBOX_RATES = f"{FAST}=25,{FAST}/SMS=50,{SLOW}=4"  # the toll-free number is slower
#: SMS bodies in turn: GSM in 1 part, GSM in 3 parts, Unicode (UCS-2) in 1 and in 2 parts.
SMS_BODIES = (
    "Your code is {i}.",
    "Order {i}: " + "your parcel left our warehouse and is on its way. " * 7,
    "Заказ {i} отправлен 📦",
    "Заказ {i}: посылка в пути, курьер позвонит заранее. " * 2 + "🚚",
)
OPTED_OUT = [f"+1206555{9000 + i:04d}" for i in range(20)]
# One event per request reaching its final status (a duplicate delivery logs another event).
FINAL_EVENTS = ("sent", "failed", "expired")
CONFIGURATION_SET = "demo-events"
# The sandbox's delivery events: what happens to the accepted sends (weights).
EVENT_OUTCOMES = {
    "delivered": 90, "accepted_only": 3, "carrier_unreachable": 2, "spam": 1,
    "blocked": 1, "ttl_expired": 1, "unknown": 1, "media_file_inaccessible": 1,
}  # fmt: skip


def campaign() -> list[Any]:
    """1,000 bodies: 20 invalid, 20 opted out, 20 expired, 10 dry runs, the rest plain."""
    bodies: list[Any] = []
    for i in range(TOTAL):
        body: dict[str, Any] = {
            "RequestId": f"demo-{i:05d}",
            "CampaignId": CAMPAIGN,
            "DestinationPhoneNumber": f"+1206555{i:04d}",
            "OriginationIdentity": SLOW if i % 10 == 0 else FAST,
            "MessageBody": f"Your order {i} has shipped.",
        }
        if i % 3 == 2 and i % 50 not in (1, 3, 5):  # a third of the campaign is SMS
            body["Channel"] = "SMS"
            body["MessageBody"] = SMS_BODIES[(i // 3) % len(SMS_BODIES)].format(i=i)
            if i % 30 == 11:
                del body["OriginationIdentity"]  # the service picks one: the default bucket
        if i % 50 == 1:
            body["MediaUrls"] = ["s3://demo-media/receipt.pdf"]
        if i % 50 == 2:
            body["DestinationPhoneNumber"] = OPTED_OUT[i // 50]
        if i % 50 == 3:
            body["NotAfter"] = "2020-01-01T00:00:00Z"
        if i % 100 == 4:
            body["DryRun"] = True
        if i % 50 == 5:  # invalid, each a different way
            key, value = [
                ("DestinationPhoneNumber", "555-0100"),
                ("MessageBody", ""),
                ("Unknown", "typo"),
                ("TimeToLive", 3),
                ("MaxPrice", "cheap"),
            ][(i // 50) % 5]
            body[key] = value
        bodies.append(body if i % 250 != 7 else "this is not JSON")
    return bodies


class Progress:
    """Count final events in the worker's JSON log; print one live line."""

    def __init__(self, log_path: Path) -> None:
        self._path = log_path
        self._offset = 0
        self.events: Counter[str] = Counter()
        self._tty = sys.stdout.isatty()
        self._last_print = 0.0
        self.done = 0

    def poll(self) -> int:
        with self._path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for line in chunk[:end].splitlines():
            try:
                self.events[json.loads(line).get("event", "")] += 1
            except ValueError:
                continue
        self.done = sum(self.events[e] for e in FINAL_EVENTS)
        return self.done

    def show(self, done: int, started: float, fed: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and not self._tty and now - self._last_print < 5:
            return
        self._last_print = now
        rate = self.events["sent"] / max(now - started, 1e-6)
        line = (
            f"  {done:5d}/{TOTAL} done | fed {fed:5d} | sent {self.events['sent']:4d} "
            f"failed {self.events['failed']:3d} expired {self.events['expired']:3d} "
            f"retries {self.events['send_retry']:3d} | {rate:5.1f} sends/s | "
            f"{now - started:5.1f}s"
        )
        print(("\r" + line) if self._tty else line, end="" if self._tty else "\n", flush=True)


async def feed(
    sqs: Any, queue_url: str, bodies: list[Any], fed: list[int], progress: Progress
) -> None:
    """Keep about 60 messages ahead of the worker: moto's SQS slows down as the queue
    deepens. (The backlog is fed minus done, counted here, so this asks SQS nothing.)"""
    for start in range(0, len(bodies), 10):
        while fed[0] - progress.done >= 60:
            await asyncio.sleep(0.1)
        chunk = bodies[start : start + 10]
        await sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "MessageBody": b if isinstance(b, str) else json.dumps(b)}
                for n, b in enumerate(chunk)
            ],
        )
        fed[0] += len(chunk)


async def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sms-worker-demo-"))
    print(f"sms-worker demo: {TOTAL} requests; logs in {workdir}")
    with (workdir / "servers.log").open("ab") as server_log:
        stack = LocalStack(
            sandbox_options=(
                "--latency-ms",
                "40",
                "--latency-jitter-ms",
                "20",
                "--rate",
                SANDBOX_RATES,
                "--opted-out",
                ",".join(OPTED_OUT),
            ),
            log=server_log,
        )
        async with stack:
            env = stack.aws_env()
            print(
                f"  moto (SQS, DynamoDB) at {env['AWS_ENDPOINT_URL_SQS']}, "
                f"sandbox at {env['AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2']}"
            )
            os.environ.update(env)
            return await run_demo(workdir, env, stack)


async def run_demo(workdir: Path, env: dict[str, str], stack: LocalStack) -> int:
    async with aws_client("sqs") as sqs, aws_client("dynamodb") as ddb:
        res = await ensure_resources(sqs, ddb, queue_name="sms-demo", table="sms-demo-status")
        events_url = str((await sqs.create_queue(QueueName="sms-demo-events"))["QueueUrl"])
        print(f"  queue {res.queue_url} (+ dead-letter queue), table {res.table}")
        print(f"  delivery events: the sandbox emits them to {events_url}")
        assert stack.sandbox is not None
        async with aiohttp.ClientSession() as http:
            config = {
                "events_queue_url": events_url,
                "events_envelope": "sns",
                "events_outcomes": EVENT_OUTCOMES,
                "events_delay_ms": 200,
                "events_jitter_ms": 800,
                "events_duplicate_rate": 0.02,
                "events_reorder": True,
            }
            async with http.post(f"{stack.sandbox.url}/_sandbox/config", json=config) as r:
                if r.status != 200:
                    print(f"  the sandbox refused the events configuration: {await r.text()}")
                    return 1
        log_path = workdir / "worker.log"
        worker_env = dict(os.environ) | {
            "SMS_WORKER_QUEUE_URL": res.queue_url,
            "SMS_WORKER_TABLE": res.table,
            "SMS_WORKER_RATE_LIMITS": WORKER_RATES,
            "SMS_WORKER_LOG_FORMAT": "json",
            "SMS_WORKER_WAIT_TIME_S": "2",
            "SMS_WORKER_PROGRESS_INTERVAL_S": "5",
            "SMS_WORKER_EVENTS_QUEUE_URL": events_url,
            "SMS_WORKER_DEFAULT_CONFIGURATION_SET": CONFIGURATION_SET,
        }
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker", "run", env=worker_env, stdout=log, stderr=log
            )
        fed = [0]
        started = time.monotonic()
        progress = Progress(log_path)
        feeder = asyncio.create_task(feed(sqs, res.queue_url, campaign(), fed, progress))
        try:
            done = 0
            while done < TOTAL:
                if process.returncode is not None:
                    print(f"\nthe worker exited with {process.returncode}; see {log_path}")
                    return 1
                if time.monotonic() - started > 240:
                    print(f"\ngave up after 240 s; see {log_path}")
                    return 1
                done = progress.poll()
                progress.show(done, started, fed[0])
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - started
            progress.show(done, started, fed[0], force=True)
            print()
            await drain_events(sqs, events_url)
        finally:
            feeder.cancel()
            if process.returncode is None:
                process.terminate()
            code = await process.wait()
        await feeder if not feeder.cancelled() and feeder.done() else None
        await summary(ddb, res.table, stack, elapsed, code)
    return 0 if code == 0 else 1


async def drain_events(sqs: Any, events_url: str, timeout_s: float = 30.0) -> None:
    """Wait (with a line of progress) until the worker has applied the delivery events."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        attrs = await sqs.get_queue_attributes(
            QueueUrl=events_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        left = sum(int(v) for v in attrs["Attributes"].values())
        if left == 0:
            await asyncio.sleep(2.5)  # a last counter flush and late (delayed) events
            return
        print(f"  applying delivery events: {left} left", flush=True)
        await asyncio.sleep(1.0)
    print(f"  {timeout_s:g} s passed with delivery events still queued; summary as it stands")


async def summary(ddb: Any, table: str, stack: LocalStack, elapsed: float, code: int) -> None:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = await ddb.scan(**kwargs)
        items += [decode_item(i) for i in page["Items"]]
        # Campaign counters and rate shares live in the same table (their KeyFamily prefix).
        items = [i for i in items if not str(i["RequestId"]).startswith(FAMILIES)]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert stack.sandbox is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.sandbox.url}/_sandbox/stats") as r:
            stats = await r.json()
        async with http.get(f"{stack.sandbox.url}/_sandbox/sends") as r:
            sends = (await r.json())["sends"]
    by_status = Counter(i["Status"] for i in items)
    by_reason = Counter(
        f"{i['ErrorCode']}/{i.get('ErrorReason', '-')}" for i in items if i.get("ErrorCode")
    )
    times = sorted(s["received_at"] for s in sends)
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    per_dest = Counter(s["destination"] for s in sends)
    print(f"\nSummary ({elapsed:.1f} s, worker exit code {code})")
    print(
        f"  records: {len(items)}  " + "  ".join(f"{k}={v}" for k, v in sorted(by_status.items()))
    )
    for reason, count in sorted(by_reason.items()):
        print(f"    {reason}: {count}")
    print(
        f"  accepted sends: {len(sends)} over {span:.1f} s = "
        f"{len(sends) / span if span else 0:.1f} sends/s; sent twice: "
        f"{sum(1 for c in per_dest.values() if c > 1)}"
    )
    for channel in sorted({str(i["Channel"]) for i in items if "Channel" in i}):
        sent = [i for i in items if i.get("Channel") == channel and i["Status"] == "SENT"]
        parts = Counter(int(i.get("ReservedParts", 1)) for i in sent)
        print(
            f"  {channel}: sent {len(sent)}, message parts {sum(k * n for k, n in parts.items())}"
            f" (sandbox accepted {stats.get('parts_by_channel', {}).get(channel, 0)}); "
            "by parts: " + " ".join(f"{k}:{n}" for k, n in sorted(parts.items()))
        )
    progress = await read_campaign(ddb, table, CAMPAIGN)
    counts = "  ".join(f"{k}={v}" for k, v in sorted(progress.counts.items()))
    print(f"  campaign counters ({CAMPAIGN}): {counts}")
    print(f"  delivery ({CAMPAIGN}): {format_delivery(progress)}")
    print(
        f"  calls: {stats['calls']}, throttled: {stats['throttled']} "
        f"({stats['throttled'] / max(stats['calls'], 1):.1%}), per identity accepted: "
        f"{json.dumps(stats.get('accepted_by_identity', {}))}"
    )


def run() -> int:
    return asyncio.run(main())


if __name__ == "__main__":
    sys.exit(run())
