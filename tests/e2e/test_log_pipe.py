"""A real ``sms-worker run`` whose log reader dies mid-run (a dying log shipper, ``| tee``, a
journald restart): every later log write hits a broken pipe. The worker must neither wedge
nor change an outcome: SIGTERM still stops it within the grace period, exit 0, and every
request it sent is recorded SENT, sent once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    request,
    table_items,
    wait_for,
    worker_env,
)

from worker.settings import Settings

pytestmark = pytest.mark.slow


def _spawn_with_log_pipe(settings: Settings) -> subprocess.Popen[bytes]:
    """``sms-worker run`` whose log (stderr) is a pipe this test reads."""
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        env=worker_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _read_until(stream: IO[bytes], needle: bytes, count: int, copy: Path) -> int:
    """Read log lines until ``count`` of them contain ``needle`` (a copy goes to ``copy``)."""
    seen = 0
    with copy.open("ab") as out:
        for line in stream:
            out.write(line)
            seen += needle in line
            if seen >= count:
                break
    return seen


async def test_a_broken_log_pipe_neither_wedges_the_worker_nor_changes_an_outcome(
    aws: Aws, env: Env, sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.configure(latency_ms=150, latency_jitter_ms=50)
    n = 60
    settings = make_settings(env, max_in_flight=8, shutdown_grace_s=8, progress_interval_s=0.2)
    worker = _spawn_with_log_pipe(settings)
    assert worker.stderr is not None
    try:
        await enqueue(aws.sqs, env.queue_url, [request(i) for i in range(n)])
        log = tmp_path / "before-the-pipe-broke.log"
        seen = await asyncio.wait_for(
            asyncio.to_thread(_read_until, worker.stderr, b'"sent"', 5, log), timeout=60
        )
        assert seen >= 5, log.read_text()
        worker.stderr.close()  # the log reader dies: every later write is a broken pipe
        await wait_for(lambda: sandbox.sent_at_least(25), timeout_s=60)
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, settings.shutdown_grace_s + 10)
        took = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert code == 0
    assert took < settings.shutdown_grace_s
    sends = await sandbox.sends_by_destination()
    assert sends and set(sends.values()) == {1}  # nothing sent twice
    items = await table_items(aws.ddb, env.table)
    by_destination = {i["DestinationPhoneNumber"]: i["Status"] for i in items.values()}
    assert {by_destination.get(d) for d in sends} == {"SENT"}  # every send recorded SENT
    assert "SENDING" not in by_destination.values()  # nothing left mid-send
