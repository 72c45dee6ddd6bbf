"""``make bench``: the worker against two boto3 baselines on identical fresh local stacks.

Each run gets its own servers: moto (SQS), a DynamoDB server (dynalite when Node.js is
there, moto otherwise) and the sandbox (50 ± 20 ms latency; per-identity MPS in the
quota-bound scenario). The harness feeds the queue progressively (moto's SQS slows down as
it deepens), waits until every request is consumed, then reads the contender's CPU and peak
RSS and every server's CPU from /proc, and the sends from the sandbox's record.
Prints one markdown table and writes it as JSON (``bench-results/latest.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session

from bench.servers import Servers, proc_stats
from worker.resources import ensure_resources
from worker.sandbox.bucket import most_in_window

IDENTITIES = ("+18005550100", "pool-bench")
MAX_IN_FLIGHT = 64  # each worker's SMS_WORKER_MAX_IN_FLIGHT
LATENCY = ("--latency-ms", "50", "--latency-jitter-ms", "20", "--seed", "1")


@dataclass(frozen=True)
class Scenario:
    name: str
    requests: int
    mps: float | None  # per identity, enforced by the sandbox; None: unlimited
    identities: tuple[str, ...] = IDENTITIES
    contenders: tuple[str, ...] = ("worker", "threadpool", "sequential")
    workers: int = 1
    backlog: int = 100  # requests kept queued ahead of the contender
    duration_s: float | None = None  # stop after this long instead of at the end
    rate_sharing: str = "dynamodb"  # SMS_WORKER_RATE_SHARING of the workers
    mixed: bool = False  # SMS (1..10 parts, GSM and Unicode) and MMS in turn; quota in parts
    events: bool = False  # the sandbox emits delivery events; the worker drains them too
    churn: bool = False  # workers join and leave mid-campaign (see churn())
    prefill: bool = False  # queue the backlog before the contender starts
    split: bool = False  # each worker configured a 1/workers part of the quota (a control)


@dataclass
class Row:
    scenario: str
    contender: str
    requests: int
    drain_s: float
    sends_per_s: float
    allowed_mps: float | None
    utilisation: float | None
    throttled: int
    throttled_fraction: float
    cpu_ms_per_msg: float
    peak_rss_mb: float
    lost: int
    duplicates: int
    servers_cpu_s: dict[str, float]
    limiter_calls_per_msg: float | None = None  # the workers' rate-share writes per send
    sms_parts_per_s: float | None = None  # mixed: SMS parts per second (what the quota counts)
    events_applied: int | None = None  # delivery events the worker handled (events scenarios)
    events_drain_s: float | None = None  # until the events queue was empty too
    cpu_s: float | None = None
    msgs_per_receive: float | None = None  # the workers' messages per ReceiveMessage
    msgs_per_ack: float | None = None  # and per DeleteMessageBatch/ChangeMessageVisibilityBatch
    # churn: per change, seconds until the fleet sent at >= 0.9 of the quota again (and the
    # most sends in any 1-s window, against quota + the sandbox's 1-s burst)
    regain_s: dict[str, float | None] | None = None
    max_1s_sends: int | None = None


def request(n: int, identity: str) -> str:
    return json.dumps(
        {
            "RequestId": f"bench-{n}",
            "CampaignId": "bench",
            "DestinationPhoneNumber": f"+1206{n // 10000 % 10}55{n % 10000:04d}"
            if n >= 10000
            else f"+1206555{n:04d}",
            "OriginationIdentity": identity,
            "MessageBody": f"benchmark message {n}",
        }
    )


def sms_body(n: int) -> str:
    """An SMS body of ``n % 10 + 1`` parts, GSM 03.38 for even ``n // 2``, UCS-2 for odd."""
    parts = n % 10 + 1
    char, single, per_part = ("я", 70, 67) if (n // 2) % 2 else ("x", 160, 153)
    return char * (single if parts == 1 else per_part * parts)


def mixed_request(n: int, identity: str) -> str:
    """Odd ``n``: an SMS of 1..10 parts; even: an MMS (the body of :func:`request`)."""
    if n % 2 == 0:
        return request(n, identity)
    body = json.loads(request(n, identity))
    body |= {"Channel": "SMS", "MessageBody": sms_body(n)}
    return json.dumps(body)


def contender_argv(kind: str, queue_url: str, table: str) -> list[str]:
    if kind == "worker":
        argv = [sys.executable, "-m", "worker", "run"]
        profile_dir = os.environ.get("BENCH_PROFILE_DIR")
        if profile_dir:  # a py-spy profile per worker (CPU figures: the worker's, under py-spy)
            # (named apart: several workers start within a millisecond). --gil: samples of the
            # thread running Python only, so a profile counts CPU, not the idle loop's poll
            # nor the idle executor threads (without it they were most of the samples).
            out = Path(profile_dir) / f"worker-{time.time_ns()}-{os.urandom(3).hex()}.txt"
            record = ["py-spy", "record", "--gil", "-r", "250", "-f", "raw", "-o", str(out)]
            argv = [*record, "--", *argv]
        return argv
    return [sys.executable, "-m", "bench.baselines", kind, queue_url, table]


#: The sandbox's delivery events in the events scenarios (outcome weights, SNS-enveloped).
EVENTS_CONFIG: dict[str, Any] = {
    "events_envelope": "sns",
    "events_outcomes": {"delivered": 90, "accepted_only": 5, "spam": 2, "unreachable": 3},
    "events_delay_ms": 100,
    "events_jitter_ms": 200,
    "events_duplicate_rate": 0.02,
    "events_reorder": True,
}


def worker_env(scenario: Scenario, queue_url: str, table: str) -> dict[str, str]:
    rate = scenario.mps if scenario.mps is not None else 1000
    if scenario.split:
        rate = round(rate / scenario.workers, 3)
    return {
        "SMS_WORKER_QUEUE_URL": queue_url,
        "SMS_WORKER_TABLE": table,
        "SMS_WORKER_RATE_LIMITS": f"default={rate}",
        "SMS_WORKER_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "SMS_WORKER_LOG_FORMAT": "json",
        "SMS_WORKER_PROGRESS_INTERVAL_S": "0",
        "SMS_WORKER_METRICS_PORT": "0",
        "SMS_WORKER_RATE_SHARING": scenario.rate_sharing,
    }


async def run_one(scenario: Scenario, kind: str, dynamo: str, logs: Path) -> Row:
    sandbox_opts = list(LATENCY)
    if scenario.mps is not None:
        sandbox_opts += ["--mps", str(scenario.mps), "--burst-s", "1"]
    async with AsyncExitStack() as stack:
        servers = await stack.enter_async_context(Servers(dynamo, sandbox_opts, logs))
        env = dict(os.environ) | servers.aws_env()
        os.environ.update(servers.aws_env())
        session = get_session()
        sqs = await stack.enter_async_context(session.create_client("sqs"))
        ddb = await stack.enter_async_context(session.create_client("dynamodb"))
        name = f"bench-{scenario.name}-{kind}-{int(time.time())}"
        res = await ensure_resources(sqs, ddb, queue_name=name, table=name, max_receive_count=10)
        env |= worker_env(scenario, res.queue_url, res.table)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        events_url = None
        if scenario.events:
            events_url = str((await sqs.create_queue(QueueName=f"{name}-events"))["QueueUrl"])
            config = EVENTS_CONFIG | {"events_queue_url": events_url}
            async with http.post(f"{servers.sandbox_url}/_sandbox/config", json=config) as r:
                assert r.status == 200, await r.text()
            env |= {
                "SMS_WORKER_EVENTS_QUEUE_URL": events_url,
                "SMS_WORKER_DEFAULT_CONFIGURATION_SET": "bench-events",
            }
        procs: list[asyncio.subprocess.Process] = []
        log_paths: list[Path] = []
        offsets: list[int] = []

        async def spawn() -> asyncio.subprocess.Process:
            path = logs / f"{scenario.name}-{kind}-{len(procs)}.log"
            log_paths.append(path)
            offsets.append(path.stat().st_size if path.exists() else 0)
            log = path.open("ab")
            stack.callback(log.close)
            proc = await asyncio.create_subprocess_exec(
                *contender_argv(kind, res.queue_url, res.table),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
            procs.append(proc)
            stack.push_async_callback(_reap, proc)
            return proc

        prefilled = 0
        if scenario.prefill:
            # moto takes SendMessageBatch at about 25 messages a second: barely above the
            # quota, so a fleet that holds 64 each would wait for the queue all run long.
            prefilled = await prefill(scenario, sqs, res.queue_url)
        for _ in range(scenario.workers):
            await spawn()
        settled: dict[int, float] = {}  # a baseline's start-up CPU (a worker logs its own)
        if kind == "worker":
            # The clock starts when the first worker is ready: on a prefilled queue it sends
            # at once, while the others are still starting.
            first: float | None = None
            for proc, path, at in zip(procs, log_paths, offsets, strict=True):
                await logged_start(proc, path, at)
                first = first or time.monotonic()
            started = first or time.monotonic()
        else:
            settled = {p.pid: await settled_cpu(p.pid) for p in procs}
            started = time.monotonic()
        changes: dict[str, float] = {}
        churning = None
        if scenario.churn:
            churning = asyncio.create_task(
                churn(scenario, procs, spawn, http, servers.sandbox_url, changes)
            )
        drain_s = await drive(
            scenario, sqs, res.queue_url, http, servers.sandbox_url, started, fed=prefilled
        )
        if churning is not None:
            await churning
        events_drain_s = None
        if events_url is not None:
            await drained(sqs, events_url)
            events_drain_s = time.monotonic() - started
        cpu_s, rss_mb = 0.0, 0.0
        for proc, path, at in zip(procs, log_paths, offsets, strict=True):
            if proc.returncode is not None:
                continue  # churn: the killed and the stopped ones (their CPU is not counted)
            stats = proc_stats(worker_pid(proc.pid))
            rss_mb = max(rss_mb, stats.peak_rss_mb)
            # less what starting cost: a worker's own count (joiners' too), a baseline's settled
            startup_s = settled.get(proc.pid)
            if startup_s is None:
                startup_s = float(final_event(run_log(path, at), "started")["startup_cpu_s"])
            cpu_s += stats.cpu_s - startup_s
        servers_cpu = servers.cpu_s()
        for proc in procs:
            if proc.returncode is None:
                # py-spy writes its profile on SIGINT (and passes it on to the worker).
                proc.send_signal(
                    signal.SIGINT if os.environ.get("BENCH_PROFILE_DIR") else signal.SIGTERM
                )
        await asyncio.gather(*(asyncio.wait_for(p.wait(), 60) for p in procs))
        async with http.get(f"{servers.sandbox_url}/_sandbox/stats") as r:
            stats = await r.json()
        sends = await all_sends(http, servers.sandbox_url)
    row = summarise(scenario, kind, drain_s, stats, sends, cpu_s, rss_mb, servers_cpu)
    if scenario.churn:
        row.regain_s = regain_times(sends, changes, scenario.mps or 0.0)
        row.max_1s_sends = most_in_window(
            (s["received_at"] for s in sends if not s["dry_run"]), 1.0
        )
    elif kind == "worker" and not os.environ.get("BENCH_PROFILE_DIR"):
        # The workers' own counts, from the events they end with (not when py-spy's SIGINT
        # cuts their logs short, nor for the churn row, whose killed worker logs none).
        logged = [run_log(path, at) for path, at in zip(log_paths, offsets, strict=True)]
        ends = [final_event(lines, "shutdown_finished") for lines in logged]

        def per_call(counted: str, calls: str) -> float | None:
            n = sum(end.get(calls, 0) for end in ends)
            return round(sum(end[counted] for end in ends) / n, 2) if n else None

        row.msgs_per_receive = per_call("received", "receive_calls")
        row.msgs_per_ack = per_call("deleted", "ack_calls")
        if scenario.events:
            row.events_applied = int(ends[0].get("events", 0))
        if scenario.rate_sharing == "dynamodb":
            writes = sum(
                int(final_event(lines, "rate_sharing_finished")["writes"]) for lines in logged
            )
            real = row.requests + row.duplicates
            row.limiter_calls_per_msg = round(writes / max(real, 1), 4)
    if scenario.events:
        row.events_drain_s = round(events_drain_s or 0.0, 1)
    row.cpu_s = round(cpu_s, 3)
    return row


async def churn(
    scenario: Scenario,
    procs: list[asyncio.subprocess.Process],
    spawn: Callable[[], Awaitable[object]],
    http: aiohttp.ClientSession,
    sandbox_url: str,
    changes: dict[str, float],
) -> None:
    """Start two workers, kill the first, stop the second as the campaign goes (``changes``:
    when, on the wall clock the sandbox stamps its sends with)."""

    async def join_two() -> None:
        await spawn()
        await spawn()

    async def kill_first() -> None:
        procs[0].kill()

    async def stop_second() -> None:
        procs[1].terminate()

    # at what fraction of the campaign accepted, which change
    steps = (
        (0.2, "join 2", join_two),
        (0.45, "SIGKILL 1", kill_first),
        (0.7, "SIGTERM 1", stop_second),
    )
    for fraction, change, act in steps:
        while True:
            async with http.get(f"{sandbox_url}/_sandbox/stats") as r:
                if (await r.json())["accepted"] >= fraction * scenario.requests:
                    break
            await asyncio.sleep(0.1)
        changes[change] = time.time()
        await act()
        print(f"    {scenario.name}: {change}", flush=True)


def regain_times(
    sends: list[dict[str, Any]], changes: dict[str, float], quota: float
) -> dict[str, float | None]:
    """Per change: seconds from it to the first 1-s window (stepping 0.1 s) with at least 0.9
    of the quota sent, from which the next two windows also have it (``None``: not before
    the next change or the end)."""
    times = sorted(s["received_at"] for s in sends if not s["dry_run"])
    ordered = sorted(changes.items(), key=lambda kv: kv[1])
    out: dict[str, float | None] = {}

    def sent(t: float) -> int:
        return bisect.bisect_left(times, t + 1.0) - bisect.bisect_left(times, t)

    for i, (change, at) in enumerate(ordered):
        end = ordered[i + 1][1] if i + 1 < len(ordered) else times[-1] - 3.0
        out[change] = None
        t = at
        while t < end:
            if all(sent(t + k) >= 0.9 * quota for k in range(3)):
                out[change] = round(t - at, 1)
                break
            t += 0.1
    return out


def run_log(path: Path, offset: int) -> list[str]:
    """The lines of a worker's log that this run wrote (from ``offset``)."""
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def final_event(lines: list[str], event: str) -> dict[str, Any]:
    """The last ``event`` a worker logged (``rate_sharing_finished``, ``shutdown_finished``:
    the counts it ends with)."""
    for line in reversed(lines):
        if f'"{event}"' in line:
            found: dict[str, Any] = json.loads(line)
            return found
    raise RuntimeError(f"no {event} event in a worker's log; did it stop cleanly?")


async def drained(sqs: Any, queue_url: str, timeout_s: float = 120.0) -> None:
    """Wait until a queue is empty (visible and in flight)."""
    deadline = time.monotonic() + timeout_s
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    while time.monotonic() < deadline:
        attrs = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
        if not sum(int(v) for v in attrs["Attributes"].values()):
            return
        await asyncio.sleep(0.2)


def events_summary(rows: list[Row]) -> str | None:
    """events-on against events-off: events applied/s, CPU per event, the sends/s change."""
    by_name = {r.scenario: r for r in rows}
    on, off = by_name.get("events-on"), by_name.get("events-off")
    if on is None or off is None or not on.events_applied:
        return None
    per_s = on.events_applied / max(on.events_drain_s or on.drain_s, 1e-6)
    cpu_ms = ((on.cpu_s or 0.0) - (off.cpu_s or 0.0)) * 1000 / on.events_applied
    change = (on.sends_per_s - off.sends_per_s) / off.sends_per_s if off.sends_per_s else 0.0
    return (
        f"events-on: {on.events_applied} events applied, {per_s:.1f} events/s, "
        f"{cpu_ms:.2f} CPU ms per event (over events-off), sends/s {on.sends_per_s} vs "
        f"{off.sends_per_s} ({change:+.1%}; goal: within 5%)"
    )


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Never leave a contender behind, whatever happened to the run."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def logged_start(
    proc: asyncio.subprocess.Process, path: Path, offset: int, timeout_s: float = 60.0
) -> None:
    """Wait for a worker's ``started`` event (which carries the CPU its start-up cost)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any('"started"' in line for line in run_log(path, offset)):
            return
        if proc.returncode is not None:
            raise RuntimeError(f"a worker exited ({proc.returncode}) before starting; see {path}")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no started event in {path} after {timeout_s:.0f}s; see that log")


def worker_pid(pid: int) -> int:
    """The worker's own process: under py-spy (``BENCH_PROFILE_DIR``) the one spawned is
    py-spy and the worker its child, whose CPU /proc/<py-spy>/stat does not count."""
    if not os.environ.get("BENCH_PROFILE_DIR"):
        return pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


async def settled_cpu(pid: int, timeout_s: float = 20.0) -> float:
    """The CPU a baseline spent starting up: wait until it stops climbing (imports, clients).
    Not for a worker fed a full queue: its CPU never stops climbing, and what it sends in the
    meanwhile would be counted out (a worker logs its own figure in ``started``)."""
    last = proc_stats(pid).cpu_s
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = proc_stats(pid).cpu_s
        if now - last < 0.02:
            return now
        last = now
    return last


async def feed_chunk(scenario: Scenario, sqs: Any, queue_url: str, fed: int) -> int:
    """Queue the next (up to) ten requests; returns how many are queued now."""
    make = mixed_request if scenario.mixed else request

    def pick(n: int) -> int:  # mixed: SMS and MMS in turn, each from every identity
        return n // 2 if scenario.mixed else n

    chunk = range(fed, min(fed + 10, scenario.requests))
    ids = scenario.identities
    await sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": str(n - fed), "MessageBody": make(n, ids[pick(n) % len(ids)])} for n in chunk
        ],
    )
    return fed + len(chunk)


async def prefill(scenario: Scenario, sqs: Any, queue_url: str) -> int:
    """Queue ``backlog`` requests before the contender starts; returns how many."""
    fed = 0
    while fed < min(scenario.backlog, scenario.requests):
        fed = await feed_chunk(scenario, sqs, queue_url, fed)
    print(f"    {scenario.name}: {fed} queued before the start", flush=True)
    return fed


async def drive(
    scenario: Scenario,
    sqs: Any,
    queue_url: str,
    http: aiohttp.ClientSession,
    sandbox_url: str,
    started: float,
    *,
    fed: int = 0,
) -> float:
    """Feed the queue (``fed`` already in it), keeping ``backlog`` requests ahead; return
    when all are consumed."""
    accepted = 0

    last_print = last_progress = time.monotonic()
    last_accepted = -1
    while True:
        async with http.get(f"{sandbox_url}/_sandbox/stats") as r:
            stats = await r.json()
        accepted = stats["accepted"] + stats["faults"]
        now = time.monotonic()
        if scenario.duration_s is not None and now - started >= scenario.duration_s:
            return now - started
        while fed < scenario.requests and fed - accepted < scenario.backlog:
            fed = await feed_chunk(scenario, sqs, queue_url, fed)
        if accepted != last_accepted:
            last_accepted, last_progress = accepted, now
        if now - last_print >= 5:
            last_print = now
            print(
                f"    {scenario.name}: fed {fed}, accepted {accepted}, throttled "
                f"{stats['throttled']}, {now - started:.0f}s",
                flush=True,
            )
        if fed >= scenario.requests and (accepted >= scenario.requests or now - last_progress > 30):
            attrs = (
                await sqs.get_queue_attributes(
                    QueueUrl=queue_url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )
            )["Attributes"]
            if not int(attrs["ApproximateNumberOfMessages"]) + int(
                attrs["ApproximateNumberOfMessagesNotVisible"]
            ):
                return time.monotonic() - started
            if now - last_progress > 120:
                print("    no progress for 120 s: stopping this run", flush=True)
                return time.monotonic() - started
        await asyncio.sleep(0.2)


async def all_sends(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    sends: list[dict[str, Any]] = []
    while True:
        async with http.get(f"{url}/_sandbox/sends", params={"since": str(len(sends))}) as r:
            page = (await r.json())["sends"]
        if not page:
            return sends
        sends += page


def summarise(
    scenario: Scenario,
    kind: str,
    drain_s: float,
    stats: dict[str, Any],
    sends: list[dict[str, Any]],
    cpu_s: float,
    rss_mb: float,
    servers_cpu: dict[str, float],
) -> Row:
    real = [s for s in sends if not s["dry_run"]]
    distinct = {s["destination"] for s in real}
    # The steady rate: the middle 80% of sends, so neither the provider's initial burst nor
    # the ramp-up and the tail count.
    times = sorted(s["received_at"] for s in real)
    lo, hi = len(times) // 10, len(times) - 1 - len(times) // 10
    span = times[hi] - times[lo] if hi > lo else 0.0
    rate = (hi - lo) / span if span else 0.0
    allowed = scenario.mps * len(scenario.identities) if scenario.mps else None
    expected = scenario.requests if scenario.duration_s is None else len(distinct)
    parts_rate = sms_parts_per_s(real) if scenario.mixed else None
    usage = parts_rate if parts_rate is not None else rate  # the quota counts SMS in parts
    return Row(
        scenario=scenario.name,
        contender=kind if scenario.workers == 1 else f"{kind} x{scenario.workers}",
        requests=len(distinct),
        drain_s=round(drain_s, 1),
        sends_per_s=round(rate, 2),
        allowed_mps=allowed,
        utilisation=round(usage / allowed, 3) if allowed else None,
        throttled=int(stats["throttled"]),
        throttled_fraction=round(stats["throttled"] / max(len(real), 1), 4),
        cpu_ms_per_msg=round(cpu_s * 1000 / max(len(real), 1), 2),
        peak_rss_mb=round(rss_mb, 1),
        lost=expected - len(distinct),
        duplicates=len(real) - len(distinct),
        servers_cpu_s={k: round(v, 1) for k, v in servers_cpu.items()},
        sms_parts_per_s=None if parts_rate is None else round(parts_rate, 2),
    )


def sms_parts_per_s(sends: list[dict[str, Any]]) -> float:
    """The steady SMS rate in message parts per second, over the middle 80% of SMS sends."""
    timed = sorted((s["received_at"], s["parts"]) for s in sends if s.get("channel") == "SMS")
    lo, hi = len(timed) // 10, len(timed) - 1 - len(timed) // 10
    span = timed[hi][0] - timed[lo][0] if hi > lo else 0.0
    return sum(parts for _, parts in timed[lo:hi]) / span if span else 0.0


def scenarios(quick: bool) -> list[Scenario]:
    n = 400 if quick else 2000
    return [
        Scenario("quota-bound", n, mps=15.0),
        Scenario("latency-bound", n, mps=None),
        # Several workers on one identity's 20 MPS: without sharing they converge by
        # throttling; with it they divide the quota through rate-share leases (x1: the
        # single-worker reference of CPU per message on the same load).
        Scenario(
            "scale-out",
            n // 2,
            mps=20.0,
            identities=(IDENTITIES[1],),
            contenders=("worker",),
            workers=3,
            rate_sharing="none",
        ),
        # The queue starts and stays 100 deep beyond what the workers hold (64 each), as a
        # campaign's deep queue would: with 100 ahead in all, six workers' twelve pollers
        # would share a near-empty queue and receive a message or two per call, an artifact
        # of the harness (and of moto, whose SendMessageBatch barely outpaces the quota).
        *(
            Scenario(
                f"scale-out-{kind}-x{workers}",
                n,
                mps=20.0,
                identities=(IDENTITIES[1],),
                contenders=("worker",),
                workers=workers,
                backlog=100 + workers * MAX_IN_FLIGHT,
                prefill=True,
                rate_sharing="dynamodb" if kind == "shared" else "none",
                split=kind == "split",
            )
            # split-x6 is the control of the x6 row: the same six workers, each configured a
            # sixth of the quota and no sharing (no lease, no borrowing, nothing to follow):
            # what six processes at 3.3 MPS cost per message here, beside one at 20 MPS.
            for kind, workers in (("shared", 1), ("shared", 3), ("shared", 6), ("split", 6))
        ),
        # The other control: one worker alone on a sixth of the quota (the sandbox enforces
        # it): split-x6's load per process without its five neighbours. What a process costs
        # per message as its own rate falls, whatever shares the quota.
        Scenario(
            "scale-out-sixth-x1",
            n // 5,
            mps=round(20.0 / 6, 3),
            identities=(IDENTITIES[1],),
            contenders=("worker",),
            backlog=100 + MAX_IN_FLIGHT,
            prefill=True,
            rate_sharing="none",
        ),
        # Workers join and leave mid-campaign (churn()): how soon the quota is used again.
        Scenario(
            "scale-out-churn",
            n,
            mps=20.0,
            identities=(IDENTITIES[1],),
            contenders=("worker",),
            workers=2,
            backlog=100 + 4 * MAX_IN_FLIGHT,
            churn=True,
            prefill=True,
        ),
        Scenario(
            "mixed-sms-mms",
            300 if quick else 1000,
            mps=30.0,  # per identity and channel: SMS parts/s, MMS messages/s
            contenders=("worker",),
            mixed=True,
        ),
        # A campaign at its quota (as quota-bound) with and without delivery events: the events
        # must not slow the sends (the sends/s change), and cost what CPU per event.
        Scenario("events-off", n, mps=15.0, contenders=("worker",)),
        Scenario("events-on", n, mps=15.0, contenders=("worker",), events=True),
        Scenario(
            "backlog-x1",
            10**6,
            mps=5.0,
            contenders=("worker",),
            backlog=60,
            duration_s=20 if quick else 40,
        ),
        Scenario(
            "backlog-x10",
            10**6,
            mps=5.0,
            contenders=("worker",),
            backlog=600,
            duration_s=20 if quick else 40,
        ),
    ]


def table(rows: list[Row]) -> str:
    head = (
        "| scenario | contender | requests | drain s | sends/s | quota use | throttled "
        "| CPU ms/msg | peak RSS MB | lost | dup | limiter calls/msg | msgs per receive/ack "
        "| servers' CPU s |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        util = f"{r.utilisation:.3f}" if r.utilisation is not None else "-"
        servers = ", ".join(f"{k} {v}" for k, v in r.servers_cpu_s.items())
        calls = f"{r.limiter_calls_per_msg:.3f}" if r.limiter_calls_per_msg is not None else "-"
        batching = (
            f"{r.msgs_per_receive} / {r.msgs_per_ack}" if r.msgs_per_receive is not None else "-"
        )
        rate = f"{r.sends_per_s}" + (
            f" ({r.sms_parts_per_s} SMS parts/s)" if r.sms_parts_per_s is not None else ""
        )
        lines.append(
            f"| {r.scenario} | {r.contender} | {r.requests} | {r.drain_s} | {rate} "
            f"| {util} | {r.throttled} ({r.throttled_fraction:.1%}) | {r.cpu_ms_per_msg} "
            f"| {r.peak_rss_mb} | {r.lost} | {r.duplicates} | {calls} | {batching} | {servers} |"
        )
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="smaller loads (a smoke run)")
    parser.add_argument("--only", default="", help="comma list of scenario names")
    parser.add_argument("--contenders", default="", help="comma list: worker,threadpool,...")
    parser.add_argument("--requests", type=int, default=0, help="override the load size")
    parser.add_argument("--out", default="bench-results/latest.json")
    args = parser.parse_args()
    dynamo = Servers.dynamo_kind()
    logs = Path("bench-results/logs")
    logs.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"sms-worker benchmark on {machine}; DynamoDB server: {dynamo}")
    rows: list[Row] = []
    wanted = set(filter(None, args.only.split(",")))
    for scenario in scenarios(args.quick):
        if wanted and scenario.name not in wanted:
            continue
        if args.requests and scenario.duration_s is None:
            scenario = dataclasses.replace(scenario, requests=args.requests)
        for kind in scenario.contenders:
            if args.contenders and kind not in args.contenders.split(","):
                continue
            print(f"  {scenario.name} / {kind} ...", flush=True)
            rows.append(await run_one(scenario, kind, dynamo, logs))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    for r in rows:
        if r.regain_s is not None:
            print(
                f"{r.scenario}: quota (>= 0.9) used again after each change, s: {r.regain_s}; "
                f"most sends in a 1-s window {r.max_1s_sends} "
                f"(quota + burst: {2 * (r.allowed_mps or 0):g})"
            )
    events_line = events_summary(rows)
    if events_line:
        print(events_line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": machine, "dynamodb_server": dynamo, "rows": [asdict(r) for r in rows]},
            indent=2,
        )
    )
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
